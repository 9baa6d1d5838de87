"""Measurements built from plain data, for the decision rules' tests."""

from harness.loadgen import RequestResult
from harness.measure import LevelRun, Measurement
from harness.prompts import Prompt


def measurement_of(
    prompts: list[Prompt], results: list[RequestResult], duration_s: float = 1.0
) -> Measurement:
    """One level at concurrency 1 whose ``results`` took ``duration_s``."""
    return Measurement(
        url="x",
        seed="s",
        model="m",
        started_at=0.0,
        prompts=prompts,
        levels=[LevelRun.of(1, results, duration_s)],
    )
