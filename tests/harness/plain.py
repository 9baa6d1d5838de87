"""Measurements built from plain data, for the decision rules' tests."""

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
