"""Sample events for the event log tests: one of each type, and numbered streams."""

from __future__ import annotations

from events.types import (
    BaselineMeasured,
    CrownDefended,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    Event,
    KingCrowned,
    KingDethroned,
    KingServing,
    MinerDeregistered,
    MinerRegistered,
    OrganicChecked,
    OrganicWindow,
    SubmissionCommitted,
    SubmissionRejected,
    WeightsSet,
)

HOTKEY = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
DIGEST = "sha256:" + "ab" * 32


def one_of_each() -> list[Event]:
    """One event of every core type, in the order a round produces them."""
    return [
        MinerRegistered(netuid=7, uid=1, hotkey=HOTKEY, coldkey="5Cold", block=10),
        SubmissionCommitted(
            netuid=7, uid=1, hotkey=HOTKEY, block=11, image="127.0.0.1:5000/m", digest=DIGEST
        ),
        SubmissionRejected(netuid=7, hotkey="5Bad", block=11, raw="0xdead", reason="no digest"),
        EvalQueued(
            eval_id="ev-1",
            hotkey=HOTKEY,
            image="127.0.0.1:5000/m",
            digest=DIGEST,
            role="challenger",
            submitted_block=11,
            round_seed="0xfeed",
        ),
        EvalStarted(eval_id="ev-1", attempt=1, worker="node-a"),
        BaselineMeasured(eval_id="ev-1", phase="before", metrics={"ttft_ms_p50": 40.0}),
        EvalFinished(
            eval_id="ev-1",
            hotkey=HOTKEY,
            digest=DIGEST,
            verdict="pass",
            reason="faster",
            score=0.25,
            noise=0.02,
            metrics={"ttft_ms_p50": 30.0, "output_tok_s": 120.0},
        ),
        KingCrowned(
            hotkey=HOTKEY,
            digest=DIGEST,
            image="127.0.0.1:5000/m",
            score=0.25,
            block=12,
            eval_id="ev-1",
        ),
        CrownDefended(hotkey=HOTKEY, score=0.25, challenger_eval_id="ev-2"),
        WeightsSet(
            netuid=7,
            uids=[1],
            weights=[65535],
            block=13,
            success=True,
            extrinsic_hash="0xabc",
            reason_eval_id="ev-1",
        ),
        KingServing(hotkey=HOTKEY, digest=DIGEST, endpoint="http://10.0.0.2:8000", since_block=13),
        OrganicWindow(
            key_id="key-1",
            minute=29_123_456,
            requests=10,
            errors=1,
            prompt_tokens=500,
            completion_tokens=900,
            upstream="king",
        ),
        OrganicChecked(
            hotkey=HOTKEY,
            digest=DIGEST,
            request_id="0f3c9a",
            passed=False,
            reason="off_argmax: 97% of the answer's 32 tokens lie more than 0.5 nats below",
            rule="greedy",
            answer_tokens=32,
            reference_tokens=0,
            gap=0.97,
        ),
        KingDethroned(hotkey=HOTKEY, digest=DIGEST, eval_id="ev-3", reason="gate failed"),
        MinerDeregistered(netuid=7, uid=1, hotkey=HOTKEY, block=20),
    ]


def started(first: int, count: int, worker: str = "w") -> list[Event]:
    """``count`` distinct small events with keys ``e{first}#1`` ... (for volume and order)."""
    return [
        EvalStarted(eval_id=f"e{i}", attempt=1, worker=worker) for i in range(first, first + count)
    ]
