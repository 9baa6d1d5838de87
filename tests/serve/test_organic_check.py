"""The organic check on plain data: which requests are judged, how answers are read from whole and
streamed completions, the two rules at their thresholds, and the reference-driven split of an
answer's text, against a toy reference engine behind httpx's MockTransport."""

from __future__ import annotations

import json
import math

import httpx
import msgspec
import pytest

from harness.gate import ARGMAX_LOGPROB_TOLERANCE
from serve_apps import organic_check
from serve_apps.organic_check import (
    GREEDY_MAX_OFF_SHARE,
    MIN_JUDGED_TOKENS,
    SAMPLED_MAX_MEAN_GAP,
    SAMPLED_MAX_TEMPERATURE,
    AnswerCollector,
    ReferenceEngine,
    answer_of_completion,
    check_answer,
    judge_greedy,
    judge_sampled,
    organic_request,
    segment,
)
from tests.serve.toy_engine import ToyReference, greedy_text

MESSAGES = [{"role": "user", "content": "Tell me about the river."}]


def body(**fields: object) -> bytes:
    return json.dumps({"model": "arena-tiny", "messages": MESSAGES, **fields}).encode()


# --- which requests are judged -----------------------------------------------------------------


def test_a_plain_request_is_judged_and_replays_its_sampling_parameters() -> None:
    request = organic_request(
        body(stream=True, max_tokens=32, temperature=0.7, top_p=0.9, seed=3, user="u")
    )
    assert request is not None
    assert request.messages == MESSAGES
    assert request.sampling == {"max_tokens": 32, "temperature": 0.7, "top_p": 0.9, "seed": 3}
    assert not request.greedy


def test_greedy_means_temperature_zero_without_penalties() -> None:
    assert organic_request(body(temperature=0, logprobs=True)).greedy
    assert not organic_request(body(temperature=0, frequency_penalty=0.5)).greedy
    assert not organic_request(body()).greedy  # the engine's default temperature samples


def test_requests_the_check_cannot_replay_are_not_judged() -> None:
    assert organic_request(body(logit_bias={"5": 100})) is None
    assert organic_request(body(tools=[])) is None
    assert organic_request(body(temperature=SAMPLED_MAX_TEMPERATURE + 0.5)) is None
    assert organic_request(b"not json") is None


# --- reading answers ---------------------------------------------------------------------------


def completion(content: str | None, finish_reason: str | None = "length") -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    return json.dumps({"choices": [{**choice, "finish_reason": finish_reason}]}).encode()


def test_a_whole_completion_gives_its_text_once_finished() -> None:
    assert answer_of_completion(completion("the river ran")) == "the river ran"
    assert answer_of_completion(completion(None, "stop")) == ""
    assert answer_of_completion(completion("cut", None)) is None
    assert answer_of_completion(b'{"error": {"message": "x"}}') is None


def sse(*events: dict | str) -> bytes:
    return b"".join(
        b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n"
        for e in events
    )


def chunk(content: str | None = None, finish_reason: str | None = None) -> dict:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def test_a_stream_gives_its_text_however_its_bytes_are_cut() -> None:
    stream = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
        chunk("the "),
        chunk("riv"),
        chunk("er ran"),
        chunk(finish_reason="length"),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}},
        "[DONE]",
    )
    for size in (1, 7, len(stream)):
        collector = AnswerCollector()
        for start in range(0, len(stream), size):
            collector.feed(stream[start : start + size])
        assert collector.answer() == "the river ran"


def test_a_stream_cut_by_an_error_gives_no_answer() -> None:
    collector = AnswerCollector()
    collector.feed(sse(chunk("the "), {"error": {"message": "upstream failed mid-stream"}}))
    assert collector.answer() is None


# --- the rules ---------------------------------------------------------------------------------


def greedy_scored(tokens: int, off: int) -> list[tuple[float, float]]:
    """``off`` tokens just beyond the tolerance below the argmax, the rest the argmax itself."""
    far = -1.0 - ARGMAX_LOGPROB_TOLERANCE - 0.01
    return [(far, -1.0)] * off + [(-1.0, -1.0)] * (tokens - off)


def test_greedy_fails_only_beyond_the_allowed_share_of_off_argmax_tokens() -> None:
    tokens = 40
    allowed = math.floor(GREEDY_MAX_OFF_SHARE * tokens)
    honest = judge_greedy(greedy_scored(tokens, 0))
    assert honest is not None and honest.passed and honest.reason == "ok" and honest.gap == 0
    edge = judge_greedy(greedy_scored(tokens, allowed))
    assert edge is not None and edge.passed
    over = judge_greedy(greedy_scored(tokens, allowed + 1))
    assert over is not None and not over.passed and over.reason == "off_argmax"
    assert over.gap == pytest.approx((allowed + 1) / tokens) and "temperature-0" in over.details
    # Within the tolerance is not off, however many such tokens there are.
    near = [(-1.0 - ARGMAX_LOGPROB_TOLERANCE + 0.01, -1.0)] * tokens
    assert judge_greedy(near).passed


def test_answers_too_short_to_say_anything_are_not_judged() -> None:
    short = MIN_JUDGED_TOKENS - 1
    assert judge_greedy(greedy_scored(short, short)) is None
    assert judge_sampled([(-20.0, 0.0)] * short, [(-1.0, 0.0)] * 20) is None
    assert judge_sampled([(-20.0, 0.0)] * 20, [(-1.0, 0.0)] * short) is None


def lps(*values: float) -> list[tuple[float, float]]:
    return [(v, 0.0) for v in values]


def test_sampled_fails_only_far_below_the_references_own_answer() -> None:
    reference = lps(*[-1.5] * 32)
    assert judge_sampled(lps(*[-1.5 - SAMPLED_MAX_MEAN_GAP + 0.1] * 32), reference).passed
    garbage = judge_sampled(lps(*[-1.5 - SAMPLED_MAX_MEAN_GAP - 0.1] * 32), reference)
    assert garbage is not None and not garbage.passed and garbage.reason == "improbable"
    assert garbage.gap == pytest.approx(SAMPLED_MAX_MEAN_GAP + 0.1)
    assert (garbage.answer_tokens, garbage.reference_tokens) == (32, 32)


def test_sampled_spares_an_answer_whose_start_is_as_likely_as_the_references() -> None:
    # What a missed split looks like: a likely start, then nonsense under the wrong context.
    reference = lps(*[-1.5] * 32)
    missed_split = lps(*[-1.5] * MIN_JUDGED_TOKENS, *[-30.0] * (32 - MIN_JUDGED_TOKENS))
    verdict = judge_sampled(missed_split, reference)
    assert verdict is not None and verdict.passed
    assert verdict.gap > SAMPLED_MAX_MEAN_GAP  # the whole answer alone would have failed it


def test_verdicts_round_trip_as_plain_data() -> None:
    verdict = judge_greedy(greedy_scored(16, 16))
    assert verdict is not None
    assert msgspec.json.decode(msgspec.json.encode(verdict), type=type(verdict)) == verdict


# --- against the toy reference engine ----------------------------------------------------------


@pytest.fixture
def toy() -> ToyReference:
    return ToyReference()


@pytest.fixture
async def engine(toy: ToyReference):
    async with httpx.AsyncClient(transport=httpx.MockTransport(toy)) as client:
        yield ReferenceEngine(client, "http://reference", "arena-tiny")


async def test_the_reference_splits_a_greedy_answer_as_it_would_have_generated_it(
    engine: ReferenceEngine,
) -> None:
    split = await segment(engine, [0], "acacac", tries=0)
    assert [p.token for p in split] == [1, 4, 1, 4, 1, 4]
    assert all(p.logprob == p.argmax for p in split)


async def test_the_search_recovers_a_sampled_split_that_greedy_misses(
    engine: ReferenceEngine, toy: ToyReference
) -> None:
    # Sampled: "ab" (the second choice) then "a". Greedy takes "a", leaving "b" to follow "a".
    missed = await segment(engine, [0], "aba", tries=0)
    assert [p.token for p in missed] == [1, 2, 1]
    toy.requests.clear()
    found = await segment(engine, [0], "aba", tries=8)
    assert [p.token for p in found] == [3, 1]
    # Only tokens the grammar allowed are tried: "ab" in place of "a", nothing else.
    assert [body["tokens"] for path, body in toy.requests if path == "/detokenize"] == [[3]]
    assert sum(p.logprob for p in found) > sum(p.logprob for p in missed)
    structured = [body for _, body in toy.requests if "structured_outputs" in body]
    assert all(body["temperature"] == 0 and body["return_token_ids"] for body in structured)


async def test_an_honest_greedy_answer_passes_and_garbage_fails(engine: ReferenceEngine) -> None:
    request = organic_request(body(temperature=0, max_tokens=12))
    honest = await check_answer(engine, request, greedy_text(12))
    assert honest is not None and honest.passed and honest.rule == "greedy"
    garbage = await check_answer(engine, request, "b" * 12)
    assert garbage is not None and not garbage.passed and garbage.reason == "off_argmax"
    assert garbage.gap == 1.0


async def test_sampled_answers_are_not_judged_while_the_rule_is_off(
    engine: ReferenceEngine, toy: ToyReference
) -> None:
    request = organic_request(body(temperature=1.0, max_tokens=12))
    assert await check_answer(engine, request, "b" * 12) is None
    assert toy.requests == []


async def test_sampled_answers_are_compared_with_the_references_own(
    engine: ReferenceEngine, toy: ToyReference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampled rule itself, switched on (see organic_check.JUDGE_SAMPLED for why it is off)."""
    monkeypatch.setattr(organic_check, "JUDGE_SAMPLED", True)
    request = organic_request(body(temperature=1.0, max_tokens=12))
    honest = await check_answer(engine, request, "ab" + "ac" * 5)  # a sampled "ab" up front
    assert honest is not None and honest.passed and honest.rule == "sampled"
    assert honest.reference_tokens == 12
    garbage = await check_answer(engine, request, "b" * 12)
    assert garbage is not None and not garbage.passed and garbage.reason == "improbable"
    (own, *_) = [body for path, body in toy.requests if path == "/v1/chat/completions"]
    assert (own["temperature"], own["max_tokens"]) == (1.0, 12)


async def test_an_empty_answer_is_not_judged_and_costs_no_request(
    engine: ReferenceEngine, toy: ToyReference
) -> None:
    assert await check_answer(engine, organic_request(body(temperature=0)), "") is None
    assert toy.requests == []
