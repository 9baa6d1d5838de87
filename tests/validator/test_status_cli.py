"""`arena validator status` folds the log the way the actors do; here from a log file, no Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.progress import describe_running
from cli.validator import render_status
from events.client import LocalLogClient
from events.log import EventLog
from events.types import (
    BaselineMeasured,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    SubmissionCommitted,
    WeightsSet,
)
from tests.validator.test_crown_policy import BASE, ROUND1


def test_status_shows_queue_king_weights_and_recent_evals(tmp_path: Path) -> None:
    pending = SubmissionCommitted(
        netuid=2,
        uid=3,
        hotkey="c",
        block=500,
        image="127.0.0.1:5000/m",
        digest="sha256:" + "c" * 64,
    )
    weights = WeightsSet(
        netuid=2, uids=[1], weights=[65535], block=120, success=True, extrinsic_hash="0xab"
    )
    with EventLog(tmp_path / "events.duckdb") as log:
        log.append([*BASE, *ROUND1, pending, weights])
        now, queue, king, last_weights, evals = render_status(LocalLogClient(log))

    assert now.columns[0]._cells == ["no evaluation running"]
    assert [c._cells for c in queue.columns][1] == ["c"]  # the queued challenger, by hotkey
    assert king.row_count == 1 and king.columns[0]._cells == ["a"]
    assert last_weights.columns[2]._cells == ["[1]"]
    assert evals.row_count == 1 and evals.columns[3]._cells == ["pass"]


def test_the_running_evaluation_is_described_from_its_logged_phases() -> None:
    queued = EvalQueued(
        eval_id="r2-x",
        hotkey="d" * 48,
        image="127.0.0.1:5000/m",
        digest="sha256:" + "d" * 64,
        role="challenger",
        submitted_block=600,
        round_seed="0x01",
    )
    started = EvalStarted(eval_id="r2-x", attempt=1, worker="w")
    before = BaselineMeasured(eval_id="r2-x", phase="before", metrics={})
    assert describe_running([queued]) == "1 evaluations queued"
    assert describe_running([queued, started]).endswith("pulling images, measuring the baseline")
    line = describe_running([queued, started, before], who=lambda h: "miner d")
    assert (
        line == "eval r2-x of miner d (1 open in the round): starting and measuring the challenger"
    )
    finished = EvalFinished(
        eval_id="r2-x",
        hotkey=queued.hotkey,
        digest=queued.digest,
        verdict="pass",
        reason="",
        score=0.1,
        noise=0.0,
        metrics={},
        role="challenger",
    )
    assert describe_running([queued, started, before, finished]) == "no evaluation running"


def test_follow_redraws_as_the_log_grows_until_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import validator

    with EventLog(tmp_path / "events.duckdb") as log:
        log.append([*BASE, *ROUND1])
        client = LocalLogClient(log)
        waits: list[int] = []

        def wait_then_interrupt(coroutine: Any) -> list[Any]:
            coroutine.close()  # the real wait would block until an event or its timeout
            waits.append(len(waits))
            if len(waits) == 2:
                raise KeyboardInterrupt
            return list(client.replay(0))

        drawn: list[int] = []
        monkeypatch.setattr(validator.asyncio, "run", wait_then_interrupt)
        monkeypatch.setattr(validator, "status_tables", lambda log: drawn.append(1) or [])
        validator._follow(client)
    # Drawn once at the start and once per wait that returned; Ctrl-C ended it quietly.
    assert (len(waits), len(drawn)) == (2, 2)
