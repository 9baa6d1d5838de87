"""Measurements and evidence built from plain data, for the decision rules' tests."""

from itertools import pairwise

from harness import gate
from harness.evidence import Evidence
from harness.loadgen import RequestResult
from harness.measurement import LevelRun, Measurement
from harness.prompts import Prompt


def measurement_of(
    prompts: list[Prompt], results: list[RequestResult], duration_s: float = 1.0
) -> Measurement:
    """One level at concurrency 1, one pass, whose ``results`` took ``duration_s``."""
    return Measurement(
        url="x",
        seed="s",
        slot=0,
        model="m",
        started_at=0.0,
        warmup=[],
        runs=[LevelRun.of(1, prompts, results, duration_s)],
    )


TOKENS = 8
PROMPTS = [Prompt(i, f"prompt {i}", TOKENS) for i in range(4)]


def _result(index: int, gap_s: float) -> RequestResult:
    arrivals = [gap_s * (t + 1) for t in range(TOKENS)]
    return RequestResult(
        prompt_index=index,
        success=True,
        start=float(index),
        ttft=arrivals[0],
        latency=arrivals[-1],
        itl=[b - a for a, b in pairwise(arrivals)],
        token_ids=[index * 10 + t for t in range(TOKENS)],
        logprobs=[-0.25] * TOKENS,
        arrivals=arrivals,
        text=f"answer {index}",
        finish_reason="length",
        client_wait=0.001,
    )


def _measurement(slot: int, gap_s: float) -> Measurement:
    """Warm-up, then concurrency 1 and 2, two passes each; answers ``gap_s`` per token."""
    runs = [
        LevelRun.of(c, PROMPTS, [_result(p.index, gap_s * (1 + n / 10)) for p in PROMPTS],
                    gap_s * TOKENS * len(PROMPTS) / c * (1 + n / 10), n)
        for c in (1, 2)
        for n in range(2)
    ]  # fmt: skip
    warmup = [_result(99, gap_s)]
    return Measurement(
        url="http://10.0.0.1:8000", seed="0x5e", slot=slot, model="arena-tiny",
        started_at=1.7e9, warmup=warmup, runs=runs,
    )  # fmt: skip


def _rescored(token_lp: float = -0.25) -> list[gate.Rescored]:
    return [
        gate.Rescored(
            concurrency=c,
            prompt_index=p.index,
            text=f"answer {p.index}",
            token_logprobs=[token_lp] * TOKENS,
            argmax_logprobs=[-0.25] * TOKENS,
        )
        for c in (1, 2)
        for p in PROMPTS
    ]


def judged_evidence(eval_id: str, token_lp: float = -0.25) -> Evidence:
    """A whole judged evaluation: a challenger twice as fast as the baseline, its tokens
    ``token_lp`` nats by the baseline's re-scoring (its argmax: -0.25), gated as harness.eval
    does."""
    before, challenger, after = _measurement(0, 0.02), _measurement(0, 0.01), _measurement(1, 0.021)
    return Evidence(
        eval_id=eval_id,
        measurements={"baseline_before": before, "challenger": challenger, "baseline_after": after},
        rescored=_rescored(token_lp),
        verdict=gate.judge(before, challenger, _rescored(token_lp)),
        noise_floor=0.02,
        logs={"challenger": "INFO serving on :8000\n", "baseline": ""},
    )
