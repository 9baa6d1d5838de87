"""A small validator history written with the real event log and evidence writer, for the
dashboard's tests: three rounds, a crowning, a defence by re-measurement, a hostile miner whose
reason and container log carry markup, weights set (once after a failure), an eval still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from events.log import EventLog
from events.types import (
    BaselineMeasured,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    Event,
    KingCrowned,
    MinerRegistered,
    RoundDecided,
    RoundOpened,
    SubmissionCommitted,
    WeightsSet,
)
from harness import evidence
from harness.eval import flat_metrics
from harness.evidence import EVIDENCE_DIR, Evidence
from tests.harness.plain import judged_evidence

KING = "5FastHonestMiner1111111111111111111111111111111"
CHEATER = "5Cheater22222222222222222222222222222222222222222"
LATE = "5LateChallenger333333333333333333333333333333333"
REGISTRY = "127.0.0.1:5000/arena"
DIGEST = {KING: "sha256:" + "f" * 64, CHEATER: "sha256:" + "c" * 64, LATE: "sha256:" + "1" * 64}
IMAGE = {KING: f"{REGISTRY}/miner-fast", CHEATER: f"{REGISTRY}/cheater", LATE: f"{REGISTRY}/late"}
HOSTILE_REASON = '<script>alert("reason")</script>'
HOSTILE_LOG = '<script>alert("log")</script> & <b>bold</b>'
KING_SCORE, REMEASURED_SCORE = 0.4321, 0.4123
CROWNING_EVAL, CHEATER_EVAL, REMEASURE_EVAL, RUNNING_EVAL = (
    "r1-0001",
    "r1-0002",
    "r2-0001",
    "r3-0001",
)


@dataclass(frozen=True)
class SyntheticRun:
    log_path: Path
    evidence_dir: Path
    last_seq: int


def _queued(eval_id: str, hotkey: str, round_no: int, role: str = "challenger") -> EvalQueued:
    return EvalQueued(
        eval_id=eval_id,
        hotkey=hotkey,
        image=IMAGE[hotkey],
        digest=DIGEST[hotkey],
        role=role,  # type: ignore[arg-type]
        submitted_block=11,
        round_seed=f"0x5e{round_no}",
    )


def _decided(round_no: int, score: float) -> RoundDecided:
    return RoundDecided(
        round=round_no,
        king_hotkey=KING,
        king_uid=1,
        king_digest=DIGEST[KING],
        king_image=IMAGE[KING],
        king_score=score,
        king_since_block=25,
        king_submitted_block=11,
        king_eval_id=CROWNING_EVAL,
    )


def history(kept: dict[str, dict[str, str]], crowning: Evidence) -> list[Event]:
    """The events, with ``kept``: eval id -> its evidence files' sha256s."""
    measured = crowning.measurements
    registered: list[Event] = [
        MinerRegistered(netuid=7, uid=uid, hotkey=hotkey, coldkey="5Cold", block=10)
        for uid, hotkey in enumerate((KING, CHEATER, LATE), 1)
    ]
    committed: list[Event] = [
        SubmissionCommitted(netuid=7, uid=uid, hotkey=h, block=11, image=IMAGE[h], digest=DIGEST[h])
        for uid, h in enumerate((KING, CHEATER, LATE), 1)
    ]
    round_1: list[Event] = [
        RoundOpened(round=1, block=20, seed="0x5e1", eval_ids=[CROWNING_EVAL, CHEATER_EVAL]),
        _queued(CROWNING_EVAL, KING, 1),
        _queued(CHEATER_EVAL, CHEATER, 1),
        EvalStarted(eval_id=CROWNING_EVAL, attempt=1, worker="head"),
        EvalStarted(eval_id=CHEATER_EVAL, attempt=1, worker="head"),
        BaselineMeasured(
            eval_id=CROWNING_EVAL,
            phase="before",
            metrics=flat_metrics(measured["baseline_before"]),
        ),
        BaselineMeasured(
            eval_id=CROWNING_EVAL, phase="after", metrics=flat_metrics(measured["baseline_after"])
        ),
        EvalFinished(
            eval_id=CROWNING_EVAL,
            hotkey=KING,
            digest=DIGEST[KING],
            verdict="pass",
            reason="ok",
            score=KING_SCORE,
            noise=0.02,
            metrics=flat_metrics(measured["challenger"]) | {"exact_match": 1.0},
            evidence=kept[CROWNING_EVAL],
        ),
        EvalFinished(
            eval_id=CHEATER_EVAL,
            hotkey=CHEATER,
            digest=DIGEST[CHEATER],
            verdict="fail",
            reason=HOSTILE_REASON,
            score=0.0,
            noise=0.0,
            metrics={},
            evidence=kept[CHEATER_EVAL],
        ),
        KingCrowned(
            hotkey=KING,
            digest=DIGEST[KING],
            image=IMAGE[KING],
            score=KING_SCORE,
            block=25,
            eval_id=CROWNING_EVAL,
            uid=1,
            submitted_block=11,
        ),
        _decided(1, KING_SCORE),
        WeightsSet(netuid=7, uids=[1], weights=[65535], block=26, success=True,
                   extrinsic_hash="0x" + "ab" * 32, reason_eval_id=CROWNING_EVAL),
    ]  # fmt: skip
    round_2: list[Event] = [
        RoundOpened(round=2, block=40, seed="0x5e2", eval_ids=[REMEASURE_EVAL]),
        _queued(REMEASURE_EVAL, KING, 2, role="king"),
        EvalStarted(eval_id=REMEASURE_EVAL, attempt=1, worker="head"),
        EvalFinished(eval_id=REMEASURE_EVAL, hotkey=KING, digest=DIGEST[KING], verdict="pass",
                     reason="ok", score=REMEASURED_SCORE, noise=0.015, metrics={}, role="king"),
        _decided(2, REMEASURED_SCORE),
        WeightsSet(netuid=7, uids=[1], weights=[65535], block=46, success=False,
                   error="<b>rate limited</b>", attempt=1, reason_eval_id=REMEASURE_EVAL),
        WeightsSet(netuid=7, uids=[1], weights=[65535], block=47, success=True, attempt=2,
                   extrinsic_hash="0x" + "cd" * 32, reason_eval_id=REMEASURE_EVAL),
    ]  # fmt: skip
    round_3: list[Event] = [
        RoundOpened(round=3, block=60, seed="0x5e3", eval_ids=[RUNNING_EVAL]),
        _queued(RUNNING_EVAL, LATE, 3),
        EvalStarted(eval_id=RUNNING_EVAL, attempt=1, worker="head"),
    ]
    return registered + committed + round_1 + round_2 + round_3


def write_run(folder: Path) -> SyntheticRun:
    """Write the history's event log (``events.duckdb``) and its evidence beside it (closed)."""
    evidence_dir = folder / EVIDENCE_DIR
    crowning = msgspec.structs.replace(
        judged_evidence(CROWNING_EVAL),
        logs={"challenger": f"INFO serving on :8000\n{HOSTILE_LOG}\n", "baseline": "ready\n"},
    )
    refused = Evidence(eval_id=CHEATER_EVAL, logs={"challenger": HOSTILE_LOG})
    kept = {e.eval_id: evidence.write(evidence_dir, e) for e in (crowning, refused)}
    log_path = folder / "events.duckdb"
    with EventLog(log_path) as log:
        seqs = log.append(history(kept, crowning))
    return SyntheticRun(log_path=log_path, evidence_dir=evidence_dir, last_seq=seqs[-1])
