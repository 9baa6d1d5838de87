"""`arena validator status` folds the log the way the actors do; here from a log file, no Ray."""

from __future__ import annotations

from pathlib import Path

from cli.validator import render_status
from events.client import LocalLogClient
from events.log import EventLog
from events.types import SubmissionCommitted, WeightsSet
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
        queue, king, last_weights, evals = render_status(LocalLogClient(log))

    assert [c._cells for c in queue.columns][1] == ["c"]  # the queued challenger, by hotkey
    assert king.row_count == 1 and king.columns[0]._cells == ["a"]
    assert last_weights.columns[2]._cells == ["[1]"]
    assert evals.row_count == 1 and evals.columns[3]._cells == ["pass"]
