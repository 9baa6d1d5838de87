"""What a measurement is: every pass of every concurrency level sent to one server.

Plain data shared by the code that measures (:mod:`harness.measure`), judges
(:mod:`harness.gate`) and scores (:mod:`harness.score`); it imports none of them.
"""

from __future__ import annotations

import msgspec

from harness.loadgen import RequestResult
from harness.metrics import BenchMetrics, compute_metrics
from harness.prompts import Prompt

__all__ = ["LevelRun", "Measurement", "least_disturbed"]


class LevelRun(msgspec.Struct, kw_only=True):
    """One pass of one concurrency level: its prompts, their results, its metrics."""

    concurrency: int
    pass_index: int
    duration_s: float
    prompts: list[Prompt]
    results: list[RequestResult]
    metrics: BenchMetrics

    @classmethod
    def of(
        cls,
        concurrency: int,
        prompts: list[Prompt],
        results: list[RequestResult],
        duration_s: float,
        pass_index: int = 0,
    ) -> LevelRun:
        """A level's run, its metrics computed from ``results`` over ``duration_s``."""
        return cls(
            concurrency=concurrency,
            pass_index=pass_index,
            duration_s=duration_s,
            prompts=prompts,
            results=results,
            metrics=compute_metrics(results, duration_s),
        )


class Measurement(msgspec.Struct, kw_only=True):
    url: str
    seed: str
    slot: int  # the plan's slot in its round (harness.plan)
    model: str
    started_at: float  # unix seconds
    warmup: list[RequestResult]
    runs: list[LevelRun]  # every pass of every level, in the order they were sent

    @property
    def levels(self) -> list[LevelRun]:
        """The pass that counts at each level (:func:`least_disturbed`), in level order."""
        by_level: dict[int, list[LevelRun]] = {}
        for run in self.runs:
            by_level.setdefault(run.concurrency, []).append(run)
        return [least_disturbed(passes) for passes in by_level.values()]

    def level(self, concurrency: int) -> LevelRun:
        for run in self.levels:
            if run.concurrency == concurrency:
                return run
        raise KeyError(f"no level with concurrency {concurrency} in this measurement")

    def run(self, concurrency: int, pass_index: int) -> LevelRun:
        """One pass of one level, counted or not (the gate pairs answers pass by pass)."""
        for run in self.runs:
            if (run.concurrency, run.pass_index) == (concurrency, pass_index):
                return run
        raise KeyError(f"no pass {pass_index} at concurrency {concurrency} in this measurement")

    def failed(self) -> list[RequestResult]:
        """Every failed request, warm-up included, in the order they were sent."""
        return [r for r in self.warmup if not r.success] + [
            r for run in self.runs for r in run.results if not r.success
        ]


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
