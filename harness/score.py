"""Score: how much faster the challenger is than the baseline, zero unless the gate passed.

    score = 0.5 * ttft_improvement + 0.5 * throughput_improvement

Per concurrency level, ``ttft_improvement = baseline median TTFT / challenger median TTFT - 1``
and ``throughput_improvement = challenger aligned tok/s / baseline tok/s - 1``, each floored at
0, then averaged over levels. *Aligned* throughput counts, per request, at most as many tokens
as the baseline produced for that prompt: tokens past it earn nothing, missing ones count
against, failed requests count zero. The baseline is the mean of the measurements before and
after the challenger (B, C, B'); ``noise`` is the score either baseline measurement earns
against the other, i.e. what pure measurement noise is worth in score units. B' draws other
prompts than B (harness.plan); every answer has the same fixed length (``ignore_eos``), so
aligning B' to B position by position is still a like-for-like count.
"""

from __future__ import annotations

import statistics

import msgspec

from harness.gate import GateVerdict
from harness.measurement import LevelRun, Measurement

__all__ = [
    "ScoreResult",
    "pair_noise",
    "raw_score",
    "score",
    "TTFT_WEIGHT",
    "THROUGHPUT_WEIGHT",
]

TTFT_WEIGHT = 0.5
THROUGHPUT_WEIGHT = 0.5


class ScoreResult(msgspec.Struct, frozen=True, kw_only=True):
    score: float
    raw_score: float  # before the gate: what the speed alone would have earned
    ttft_improvement: float
    throughput_improvement: float
    noise: float
    gate_passed: bool


def _median_ttft(level: LevelRun) -> float:
    ttfts = [r.ttft for r in level.results if r.success]
    return statistics.median(ttfts) if ttfts else float("inf")


def _throughput(level: LevelRun) -> float:
    return level.metrics.output_throughput_tps


def _aligned_throughput(reference: LevelRun, level: LevelRun) -> float:
    if level.duration_s <= 0:
        return 0.0
    tokens = sum(
        min(r.output_len, ref.output_len)
        for ref, r in zip(reference.results, level.results, strict=True)
        if r.success
    )
    return tokens / level.duration_s


def _improvement(better: float, worse: float) -> float:
    """``better / worse - 1`` floored at 0 (higher is better)."""
    if worse <= 0:
        return 0.0
    return max(0.0, better / worse - 1.0)


def _components(baselines: list[Measurement], challenger: Measurement) -> tuple[float, float]:
    ttft, throughput = [], []
    for level in challenger.levels:
        base_levels = [b.level(level.concurrency) for b in baselines]
        base_ttft = statistics.fmean(_median_ttft(b) for b in base_levels)
        base_tps = statistics.fmean(_throughput(b) for b in base_levels)
        chal_ttft = _median_ttft(level)
        ttft.append(0.0 if chal_ttft == float("inf") else _improvement(base_ttft, chal_ttft))
        # Aligned to the first baseline's answers to the same prompts (the same plan's pass).
        reference = baselines[0].run(level.concurrency, level.pass_index)
        throughput.append(_improvement(_aligned_throughput(reference, level), base_tps))
    if not ttft:
        return 0.0, 0.0  # nothing was measured: the warm-up failed (harness.measure)
    return statistics.fmean(ttft), statistics.fmean(throughput)


def raw_score(baselines: list[Measurement], challenger: Measurement) -> tuple[float, float, float]:
    """(score, ttft_improvement, throughput_improvement) of ``challenger``, ignoring the gate."""
    ttft, throughput = _components(baselines, challenger)
    return TTFT_WEIGHT * ttft + THROUGHPUT_WEIGHT * throughput, ttft, throughput


def pair_noise(first: Measurement, second: Measurement) -> float:
    """The score either of two measurements of the same server earns against the other."""
    return max(raw_score([first], second)[0], raw_score([second], first)[0])


def score(
    baseline_before: Measurement,
    challenger: Measurement,
    baseline_after: Measurement | None,
    verdict: GateVerdict,
    *,
    noise_floor: float = 0.0,
) -> ScoreResult:
    """Score ``challenger`` against the baseline measured before (and after) it.

    ``noise`` is never below ``noise_floor``: one pair of baseline measurements is a weak
    estimate of the noise (an A/A challenger beats it about one time in four), so the caller
    passes what it knows better, e.g. the profile's floor and the round's other pairs.
    """
    baselines = [baseline_before] if baseline_after is None else [baseline_before, baseline_after]
    value, ttft, throughput = raw_score(baselines, challenger)
    noise = noise_floor
    if baseline_after is not None:
        noise = max(noise, pair_noise(baseline_before, baseline_after))
    return ScoreResult(
        score=value if verdict.passed else 0.0,
        raw_score=value,
        ttft_improvement=ttft,
        throughput_improvement=throughput,
        noise=noise,
        gate_passed=verdict.passed,
    )
