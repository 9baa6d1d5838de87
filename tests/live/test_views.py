"""Live views over a real event log file."""

from __future__ import annotations

import duckdb
import pytest

from events.log import EventLog
from events.types import LiveChallengeScored, LiveWeightsComputed
from live.views import install_views, with_views


def _scored(uid: int, n: int, *, correct: bool, latency_ms: float) -> LiveChallengeScored:
    return LiveChallengeScored(
        validator="v",
        netuid=2,
        uid=uid,
        hotkey=f"hk{uid}",
        task="arith",
        kind="organic" if n == 0 else "synthetic",
        request_id=f"v/{uid}/{n}",
        window=0,
        correct=correct,
        latency_ms=latency_ms,
        score=1.0 if correct else 0.0,
        ema=0.1 * n,
        counted=True,
        error_kind="" if latency_ms >= 0 else "timeout",
    )


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "log.duckdb"
    with EventLog(path) as log:
        log.append([_scored(1, n, correct=True, latency_ms=10.0 * (n + 1)) for n in range(3)])
        log.append([_scored(2, n, correct=False, latency_ms=-1.0) for n in range(2)])
        log.append(
            [
                LiveWeightsComputed(
                    validator="v", netuid=2, block=7, uids=[1, 2], weights=[0.9, 0.1], scores={}
                )
            ]
        )
    return path


def test_views_through_the_read_only_sql_path(log_path):
    with EventLog(log_path) as log:
        _, rows = log.sql(
            with_views(
                "SELECT uid, requests, organic_requests, accuracy, errors, latency_ms_p50, ema "
                "FROM live_miner_minutes ORDER BY uid"
            )
        )
        assert rows == [(1, 3, 1, 1.0, 0, 20.0, pytest.approx(0.2)), (2, 2, 1, 0.0, 2, None, 0.1)]
        _, weights = log.sql(with_views("SELECT block, uid, weight FROM live_weights ORDER BY uid"))
        assert weights == [(7, 1, 0.9), (7, 2, 0.1)]
        _, counted = log.sql(
            with_views("WITH s AS (SELECT * FROM live_scores) SELECT count(*) FROM s")
        )
        assert counted == [(5,)]


def test_installed_views_on_the_log_file(log_path):
    con = duckdb.connect(str(log_path))
    install_views(con)
    install_views(con)  # idempotent
    rows = con.execute(
        "SELECT uid, count(*), bool_and(latency_ms IS NULL) FROM live_scores "
        "GROUP BY uid ORDER BY uid"
    ).fetchall()
    con.close()
    assert rows == [(1, 3, False), (2, 2, True)]
