"""The gate's buffering rule on plain data: it judges a challenger against how the baseline
arrived, and asks for new measurements when a starved client or node means it cannot tell."""

import asyncio
from itertools import pairwise

import msgspec
import pytest

from harness import gate
from harness.loadgen import RequestResult
from harness.measure import Measurement
from harness.profile import get_profile
from harness.prompts import Prompt
from tests.fixtures.vllm import free_port
from tests.harness.plain import measurement_of

TOKENS = 8
PROMPTS = [Prompt(i, f"p{i}", TOKENS) for i in range(4)]
PROFILE = msgspec.structs.replace(get_profile("local"), request_timeout_s=5.0)


def _measurement(flushed: list[bool], starved: list[bool] | None = None) -> Measurement:
    """One answer per prompt: a flushed one arrives in one read at the end, the others spread;
    during a starved one the measuring client waited for CPU for most of its latency."""
    results = []
    for i, (prompt, at_once) in enumerate(zip(PROMPTS, flushed, strict=True)):
        arrivals = [0.1] * TOKENS if at_once else [0.01 * (t + 1) for t in range(TOKENS)]
        results.append(
            RequestResult(
                prompt_index=prompt.index,
                success=True,
                ttft=arrivals[0],
                latency=arrivals[-1],
                itl=[b - a for a, b in pairwise(arrivals)],
                token_ids=list(range(TOKENS)),
                arrivals=arrivals,
                client_wait=0.9 * arrivals[-1] if starved and starved[i] else 0.0,
            )
        )
    return measurement_of(PROMPTS, results)


def _check(baseline: Measurement, challenger: Measurement) -> gate.GateVerdict:
    # Nothing listens here: a challenger the buffering rule lets through reaches re-scoring,
    # which then fails as a validator fault ("unreachable").
    url = f"http://127.0.0.1:{free_port()}"
    return asyncio.run(gate.check(baseline, challenger, rescore_url=url, profile=PROFILE))


def test_every_answer_in_one_piece_while_the_baseline_streamed_is_buffering():
    verdict = _check(_measurement([False, False, False, True]), _measurement([True] * 4))
    assert (verdict.passed, verdict.reason) == (False, "buffered_stream")
    assert "baseline: 25%" in verdict.details


def test_a_baseline_that_also_arrived_in_one_piece_must_be_measured_again():
    with pytest.raises(gate.InconclusiveError, match="baseline again"):
        _check(_measurement([True, True, False, False]), _measurement([True] * 4))


def test_baseline_answers_the_client_was_starved_for_are_not_the_yardstick():
    baseline = _measurement([True, True, True, False], starved=[True, True, True, False])
    verdict = _check(baseline, _measurement([True] * 4))
    assert (verdict.passed, verdict.reason) == (False, "buffered_stream")
    assert "baseline: 0%" in verdict.details


def test_a_challenger_read_by_a_starved_client_must_be_measured_again():
    challenger = _measurement([True] * 4, starved=[True, True, True, False])
    with pytest.raises(gate.InconclusiveError, match="waited for CPU"):
        _check(_measurement([False] * 4), challenger)


def test_one_streamed_answer_clears_the_challenger_of_buffering():
    with pytest.raises(gate.InconclusiveError, match="unreachable"):
        _check(_measurement([True] * 4), _measurement([True, True, True, False]))
