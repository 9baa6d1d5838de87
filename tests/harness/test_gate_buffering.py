"""The gate's buffering rule on plain data: it judges each challenger answer against how the
baseline's answer to the same prompt arrived, and asks for new measurements when a starved
client or node leaves too few answers to judge.

A measurement is written as one letter per answer: ``s`` streamed, ``f`` arrived in one network
read; upper case (``S``, ``F``) means the measuring client waited for CPU for most of it."""

import asyncio
from itertools import pairwise

import msgspec
import pytest

from harness import gate
from harness.loadgen import RequestResult
from harness.measurement import Measurement
from harness.profile import get_profile
from harness.prompts import Prompt
from tests.fixtures.vllm import free_port
from tests.harness.plain import measurement_of

TOKENS = 8
PROFILE = msgspec.structs.replace(get_profile("local"), request_timeout_s=5.0)


def _result(index: int, answer: str, tokens: int) -> RequestResult:
    at_once = answer.lower() == "f"
    arrivals = [0.1] * tokens if at_once else [0.01 * (t + 1) for t in range(tokens)]
    return RequestResult(
        prompt_index=index,
        success=True,
        ttft=arrivals[0],
        latency=arrivals[-1],
        itl=[b - a for a, b in pairwise(arrivals)],
        token_ids=list(range(tokens)),
        arrivals=arrivals,
        client_wait=0.9 * arrivals[-1] if answer.isupper() else 0.0,
    )


def _measurement(answers: str, tokens: int = TOKENS) -> Measurement:
    prompts = [Prompt(i, f"p{i}", tokens) for i in range(len(answers))]
    return measurement_of(prompts, [_result(i, a, tokens) for i, a in enumerate(answers)])


def _check(baseline: Measurement, challenger: Measurement) -> gate.GateVerdict:
    # Nothing listens here: a challenger the buffering rule lets through reaches re-scoring,
    # which then fails as a validator fault ("unreachable").
    url = f"http://127.0.0.1:{free_port()}"
    return asyncio.run(gate.check(baseline, challenger, rescore_url=url, profile=PROFILE))


def _outcome(baseline: str, challenger: str) -> str:
    """``buffered``, ``measure again`` (the rule cannot judge) or ``re-scored`` (no verdict)."""
    try:
        verdict = _check(_measurement(baseline), _measurement(challenger))
    except gate.InconclusiveError as exc:
        return "re-scored" if "unreachable" in str(exc) else "measure again"
    assert (verdict.passed, verdict.reason) == (False, "buffered_stream"), verdict
    return "buffered"


def test_every_answer_in_one_piece_while_the_baseline_streamed_is_buffering():
    verdict = _check(_measurement("sssssssf"), _measurement("ffffffff"))
    assert (verdict.passed, verdict.reason) == (False, "buffered_stream")
    assert "7 of 7 answers" in verdict.details
    assert "first prompt 0 at concurrency 1" in verdict.details


def test_streaming_one_answer_and_buffering_the_rest_is_buffering():
    verdict = _check(_measurement("ssssssss"), _measurement("sfffffff"))
    assert (verdict.passed, verdict.reason) == (False, "buffered_stream")
    assert "7 of 8 answers" in verdict.details
    assert "first prompt 1 at concurrency 1" in verdict.details


def test_a_baseline_that_also_arrived_in_one_piece_must_be_measured_again():
    with pytest.raises(gate.InconclusiveError, match="measure the baseline and the challenger"):
        _check(_measurement("ffffffss"), _measurement("ffffffff"))


def test_baseline_answers_the_client_was_starved_for_are_not_the_yardstick():
    verdict = _check(_measurement("FFFsssss"), _measurement("ffffffff"))
    assert (verdict.passed, verdict.reason) == (False, "buffered_stream")
    assert "5 of 5 answers" in verdict.details


def test_a_challenger_read_by_a_starved_client_must_be_measured_again():
    with pytest.raises(gate.InconclusiveError, match="starved of CPU"):
        _check(_measurement("ssssssss"), _measurement("FFFFFFff"))


def test_answers_too_short_to_stream_are_no_evidence():
    short = gate.BUFFER_MIN_TOKENS - 1
    with pytest.raises(gate.InconclusiveError, match="unreachable"):
        _check(_measurement("ssssssss", short), _measurement("ffffffff", short))


@pytest.mark.parametrize(
    ("baseline", "challenger", "outcome"),
    [
        # honest: every answer streamed, or one flushed now and then (the engine merged tokens)
        ("ssssssss", "ssssssss", "re-scored"),
        ("ssssssss", "ssfsssss", "re-scored"),
        # per answer: flushed only where the baseline's answer to the same prompt also was
        ("ffffssss", "ffffssss", "re-scored"),
        ("ffffssss", "ssssffff", "buffered"),
        # the share: 3 of 8 is under it, 4 of 8 reaches it
        ("ssssssss", "fffsssss", "re-scored"),
        ("ssssssss", "ffffssss", "buffered"),
        ("ssssssss", "sssfsfff", "buffered"),
        # starved pairs are excluded, whichever side's client was starved
        ("SSSSssss", "ffffssss", "re-scored"),
        ("ssssssss", "FFFFssss", "re-scored"),
        ("ssssssss", "FFFFffff", "buffered"),
        ("SSSSssss", "ssssffff", "buffered"),
        # enough evidence: 4 pairs judge, 3 do not
        ("ffffssss", "ffffffff", "buffered"),
        ("fffffsss", "ffffffff", "measure again"),
        ("SSSSSsss", "ffffffff", "measure again"),
        ("ssssssss", "FFFFFfff", "measure again"),
        # too little evidence, but the challenger flushed under the share anyway
        ("ffffffss", "fffsssss", "re-scored"),
    ],
)
def test_the_rule_judges_each_answer_against_the_baselines_answer(
    baseline: str, challenger: str, outcome: str
):
    assert _outcome(baseline, challenger) == outcome
