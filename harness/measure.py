"""High-level harness API: measure a server, compare a challenger with the baseline.

    measurement = await measure(url, profile, seed)          # one server, every concurrency level
    verdict = await gate.check(baseline, challenger, rescore_url=baseline_url, profile=profile)
    result = score.score(baseline, challenger, baseline_after, verdict)
    comparison = await compare(baseline_url, challenger_url, profile, seed)  # B, C, B', gate, score

``seed`` is the round's block hash: it picks the prompts (``harness.prompts``). A measurement
keeps every request's output (token ids, logprobs, arrival times) so the gate can judge it
later. Nothing here raises because of what a measured server does; failures are data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from harness import gate, score
from harness.loadgen import RequestResult, run_level
from harness.metrics import BenchMetrics, compute_metrics
from harness.profile import Profile
from harness.prompts import Prompt, PromptSource, sample_prompts

__all__ = ["Comparison", "LevelRun", "Measurement", "compare", "least_disturbed", "measure"]

# Longest silence allowed between two chunks of one stream before the request counts as hung.
STALL_TIMEOUT_S = 10.0


class LevelRun(msgspec.Struct, kw_only=True):
    concurrency: int
    duration_s: float
    results: list[RequestResult]
    metrics: BenchMetrics

    @classmethod
    def of(cls, concurrency: int, results: list[RequestResult], duration_s: float) -> LevelRun:
        """A level's run, its metrics computed from ``results`` over ``duration_s``."""
        return cls(
            concurrency=concurrency,
            duration_s=duration_s,
            results=results,
            metrics=compute_metrics(results, duration_s),
        )


class Measurement(msgspec.Struct, kw_only=True):
    url: str
    seed: str
    model: str
    started_at: float  # unix seconds
    prompts: list[Prompt]
    levels: list[LevelRun]

    def level(self, concurrency: int) -> LevelRun:
        for run in self.levels:
            if run.concurrency == concurrency:
                return run
        raise KeyError(f"no level with concurrency {concurrency} in this measurement")


class Comparison(msgspec.Struct, kw_only=True):
    baseline_before: Measurement
    challenger: Measurement
    baseline_after: Measurement
    verdict: gate.GateVerdict
    score: score.ScoreResult


async def measure(
    url: str,
    profile: Profile,
    seed: str,
    *,
    source: PromptSource | None = None,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    on_request_done: Callable[[RequestResult], None] | None = None,
) -> Measurement:
    """Warm up, then send the round's prompts at each of ``profile.concurrency_levels``.

    Each level is sent ``profile.passes`` times and one pass is kept (:func:`least_disturbed`).
    """
    prompts = sample_prompts(
        seed, profile.num_prompts, profile.input_tokens, profile.output_tokens, source
    )
    started_at = time.time()
    kwargs = {
        "request_timeout_s": profile.request_timeout_s,
        "stall_timeout_s": stall_timeout_s,
    }
    if profile.warmup_requests:
        warmup = sample_prompts(
            f"warmup:{seed}",
            profile.warmup_requests,
            profile.input_tokens,
            profile.output_tokens,
            source,
        )
        await run_level(url, warmup, profile.served_model_name, 1, **kwargs)
    levels = []
    for concurrency in profile.concurrency_levels:
        passes = []
        for _ in range(profile.passes):
            results, duration = await run_level(
                url,
                prompts,
                profile.served_model_name,
                concurrency,
                on_done=on_request_done,
                **kwargs,
            )
            passes.append(LevelRun.of(concurrency, results, duration))
        levels.append(least_disturbed(passes))
    return Measurement(
        url=url,
        seed=seed,
        model=profile.served_model_name,
        started_at=started_at,
        prompts=prompts,
        levels=levels,
    )


def least_disturbed(passes: list[LevelRun]) -> LevelRun:
    """The pass that counts: the first with a failed request, else the shortest.

    Interference from other work on the machine only ever slows a pass down, so the shortest
    is the best estimate of the server's own speed (as ``timeit`` takes the minimum). Failures
    are never averaged away: a pass that had one is what the gate and the score must see.
    """
    for run in passes:
        if run.metrics.failed:
            return run
    return min(passes, key=lambda run: run.duration_s)


async def compare(
    baseline_url: str,
    challenger_url: str,
    profile: Profile,
    seed: str,
    *,
    source: PromptSource | None = None,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    on_request_done: Callable[[str, RequestResult], None] | None = None,
) -> Comparison:
    """Both servers up at once: measure baseline, challenger, baseline again; gate; score.

    ``on_request_done`` gets the phase name ("baseline", "challenger", "baseline_after").
    """

    def progress(phase: str) -> Callable[[RequestResult], None] | None:
        if on_request_done is None:
            return None
        return lambda result: on_request_done(phase, result)

    common = {"source": source, "stall_timeout_s": stall_timeout_s}
    before = await measure(
        baseline_url, profile, seed, on_request_done=progress("baseline"), **common
    )
    challenger = await measure(
        challenger_url, profile, seed, on_request_done=progress("challenger"), **common
    )
    after = await measure(
        baseline_url, profile, seed, on_request_done=progress("baseline_after"), **common
    )
    verdict = await gate.check(before, challenger, rescore_url=baseline_url, profile=profile)
    return Comparison(
        baseline_before=before,
        challenger=challenger,
        baseline_after=after,
        verdict=verdict,
        score=score.score(before, challenger, after, verdict),
    )
