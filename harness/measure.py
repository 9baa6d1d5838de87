"""High-level harness API: measure a server, compare a challenger with the baseline.

    plan = plan_measurement(seed, slot, profile)             # the prompts (harness.plan)
    measurement = await measure(url, profile, plan)          # one server, every concurrency level
    verdict = await gate.check(baseline, challenger, rescore_url=baseline_url, profile=profile)
    result = score.score(baseline, challenger, baseline_after, verdict)
    comparison = await compare(baseline_url, challenger_url, profile, seed)  # B, C, B', gate, score

A measurement starts with the plan's warm-up, sent one request at a time and never scored: the
same for every server, fresh or already up. Its first request doubles as the probe, so a server
that hangs or errors fails in seconds; the warm-up's stall limit is the whole request timeout,
since an honest vLLM CPU compiles kernels on its first request. Then every pass of every level
sends its own prompts. A measurement keeps every request's output (token ids, logprobs, arrival
times) so the gate can judge it later. Nothing here raises because of what a measured server
does; failures are data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from harness import gate, score
from harness.loadgen import RequestResult, run_level
from harness.measurement import LevelRun, Measurement
from harness.plan import PromptPlan, plan_measurement
from harness.profile import Profile
from harness.prompts import PromptSource

__all__ = [
    "Comparison",
    "compare",
    "measure",
]


class Comparison(msgspec.Struct, kw_only=True):
    baseline_before: Measurement
    challenger: Measurement
    baseline_after: Measurement
    verdict: gate.GateVerdict
    score: score.ScoreResult


async def measure(
    url: str,
    profile: Profile,
    plan: PromptPlan,
    *,
    on_request_done: Callable[[RequestResult], None] | None = None,
    on_pass: Callable[[int, int, int], None] | None = None,
) -> Measurement:
    """Warm up, then send the plan's prompts at each of ``profile.concurrency_levels``.

    Each level is sent ``profile.passes`` times, each pass with its own prompts; the
    least-disturbed pass counts (:attr:`Measurement.levels`). A failed warm-up request ends
    the measurement there, with no runs. For a live display, ``on_pass(concurrency,
    pass_index, requests)`` is called as each pass starts and ``on_request_done`` as each of
    its requests ends; the warm-up is ``on_pass(0, 0, requests)``, its requests not counted.
    """
    measurement = Measurement(
        url=url,
        seed=plan.seed,
        slot=plan.slot,
        model=profile.served_model_name,
        started_at=time.time(),
        warmup=[],
        runs=[],
    )
    if on_pass is not None:
        on_pass(0, 0, len(plan.warmup))
    for prompt in plan.warmup:
        (result,), _ = await run_level(
            url,
            [prompt],
            profile.served_model_name,
            1,
            request_timeout_s=profile.request_timeout_s,
            stall_timeout_s=profile.request_timeout_s,
        )
        measurement.warmup.append(result)
        if not result.success:
            return measurement
    for concurrency in profile.concurrency_levels:
        for pass_index in range(profile.passes):
            prompts = plan.pass_prompts(concurrency, pass_index)
            if on_pass is not None:
                on_pass(concurrency, pass_index, len(prompts))
            results, duration = await run_level(
                url,
                prompts,
                profile.served_model_name,
                concurrency,
                request_timeout_s=profile.request_timeout_s,
                stall_timeout_s=profile.stall_timeout_s,
                on_done=on_request_done,
            )
            measurement.runs.append(
                LevelRun.of(concurrency, prompts, results, duration, pass_index)
            )
    return measurement


async def compare(
    baseline_url: str,
    challenger_url: str,
    profile: Profile,
    seed: str,
    *,
    source: PromptSource | None = None,
    on_request_done: Callable[[str, RequestResult], None] | None = None,
) -> Comparison:
    """Both servers up at once: measure baseline, challenger, baseline again; gate; score.

    The baseline and the challenger share the plan of slot 0; the second baseline measurement
    draws slot 1's (harness.plan). ``on_request_done`` gets the phase name ("baseline",
    "challenger", "baseline_after").
    """

    def progress(phase: str) -> Callable[[RequestResult], None] | None:
        if on_request_done is None:
            return None
        return lambda result: on_request_done(phase, result)

    plan = plan_measurement(seed, 0, profile, source)
    before = await measure(
        baseline_url,
        profile,
        plan,
        on_request_done=progress("baseline"),
    )
    challenger = await measure(
        challenger_url,
        profile,
        plan,
        on_request_done=progress("challenger"),
    )
    after = await measure(
        baseline_url,
        profile,
        plan_measurement(seed, 1, profile, source),
        on_request_done=progress("baseline_after"),
    )
    verdict = await gate.check(before, challenger, rescore_url=baseline_url, profile=profile)
    return Comparison(
        baseline_before=before,
        challenger=challenger,
        baseline_after=after,
        verdict=verdict,
        score=score.score(before, challenger, after, verdict),
    )
