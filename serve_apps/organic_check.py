"""Organic check: does the king answer organic users as the pinned model would?

The gate judges only what the validator's harness sends, so a king could answer those requests
correctly and every other user cheaply (garbage, a smaller model). The gateway therefore has a
share of the king's organic answers re-scored here, on the reference engine (a vLLM OpenAI server
of the pinned model), with the gate's own re-scorer (:class:`harness.gate.Rescorer`, teacher
forcing by prompt logprobs) and its per-token ``ARGMAX_LOGPROB_TOLERANCE``.

The gateway sees the answer's text, not its token ids, and text does not say how it was split
into tokens. The tokenizer's own split of it is not what a model need produce: on the local tiny
model (random weights), 30 of 40 honest greedy answers re-tokenized differently, and then up to
83% of their tokens lay far below the argmax, as a cheater's do. So the reference splits the text
itself (:func:`segment`): greedy decoding constrained to exactly the answer's text (vLLM structured
outputs) picks, at each step, the token the reference likes best among those that continue the
text, which for an honest greedy answer is the answer's own token (40 of 40 on the tiny model). A
sampled answer's tokens need not be the reference's favourites, so a bounded local search then
tries, position by position, the other tokens that continue the text there (the constrained
decode lists them: its logprobs are taken after the grammar's mask), and keeps a split that makes
the whole text more likely.

Rules, on plain data (:func:`judge_greedy`, :func:`judge_sampled`):

- not judged (no verdict): a request with fields the check does not replay, a temperature above
  ``SAMPLED_MAX_TEMPERATURE``, fewer than ``MIN_JUDGED_TOKENS`` tokens, or the reference could not
  answer (:class:`~harness.gate.InconclusiveError`). Never a fail: only the king can be blamed.
- ``greedy`` (temperature 0, no penalties): fails when more than ``GREEDY_MAX_OFF_SHARE`` of the
  answer's tokens lie more than ``ARGMAX_LOGPROB_TOLERANCE`` below the reference's argmax.
- ``sampled`` (switched off for now, see ``JUDGE_SAMPLED``): the reference answers the same
  request once with the same parameters; fails when the answer's mean token logprob lies more
  than ``SAMPLED_MAX_MEAN_GAP`` nats below that of the reference's own answer, over the whole
  answer and over its first ``MIN_JUDGED_TOKENS`` tokens alike (a split the search missed hurts
  only the tokens after it, so an honest answer keeps a likely start; a cheap answer is unlikely
  from its first token on).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import msgspec

from harness.gate import ARGMAX_LOGPROB_TOLERANCE, InconclusiveError, Rescorer
from harness.sse import split_events
from rules.reasons import OrganicReason

__all__ = [
    "GREEDY_MAX_OFF_SHARE",
    "MIN_JUDGED_TOKENS",
    "SAMPLED_MAX_MEAN_GAP",
    "SAMPLED_MAX_TEMPERATURE",
    "AnswerCollector",
    "OrganicRequest",
    "OrganicVerdict",
    "ReferenceEngine",
    "answer_of_completion",
    "check_answer",
    "judge_greedy",
    "judge_sampled",
    "organic_request",
    "segment",
    "JUDGE_SAMPLED",
    "SEGMENT_TRIES",
    "SEGMENT_CANDIDATES",
    "SEGMENT_MIN_LOGPROB",
    "OrganicRule",
]

# Thresholds, measured on the local tiny model with this module's split and rules re-enacted over
# transformers (fp32, the weights vLLM serves): 20-40 prompts per case, answers of 8, 32 and 64
# tokens, temperature 0.7 and 1; "cheats" are the other-seed model's answers and random tokens.
# Fewer tokens than this say too little: one odd token would be an eighth of the answer.
MIN_JUDGED_TOKENS = 8
# Greedy: honest answers had no token beyond the tolerance (share 0.0, split exactly as generated
# in 50 of 50); cheats 0.96-1.0, and an honest half followed by random tokens 0.64-0.75. A quarter
# leaves room for bf16 near-ties and a stray split on GPUs, and still fails half-garbage answers.
GREEDY_MAX_OFF_SHARE = 0.25
# Sampled (the lesser of the two views): honest answers lay -2.5..+2.0 nats below the reference's
# own, every split recovered (125 of 125); cheats 8.6-18.8. About half-way. A smaller model of the
# same family stays well inside this; on greedy requests its tokens leave the argmax.
SAMPLED_MAX_MEAN_GAP = 5.0
# Above this temperature honest samples take tokens from deep in the tail and the search
# recovered only 11 of 20 (T=1.5) and 4 of 20 (T=2) honest splits (an earlier search, over
# teacher forcing's top 20): such answers are not judged. 1.0 is the OpenAI default.
SAMPLED_MAX_TEMPERATURE = 1.0
# The sampled rule is off: against a real vLLM king at temperature 1 one honest answer was split
# into 56 tokens for the 32 it had and lay 12.4 nats below the reference's own, past the cheats'
# 10.7, so it would fail an honest king. Until a split that holds for every honest sample is
# found, sampled answers are not judged and only greedy ones (never failed honestly) count.
JUDGE_SAMPLED = False
# Local search: other tokens tried per answer (each costs a constrained decode and a re-score);
# 8 recovered every honest split above, the start first. Tokens listed per position: vLLM's
# default --max-logprobs (a position rarely has more than a few tokens that continue the text).
SEGMENT_TRIES = 8
SEGMENT_CANDIDATES = 20
# A token is tried only if it holds at least e**-7 (0.1%) of the probability of all the tokens that
# continue the text there: an honest king picks rarer ones too seldom to matter, and without the
# bound the tries went to word fragments ("th" for "the") at the first few positions.
SEGMENT_MIN_LOGPROB = -7.0

# What the reference's own answer replays: everything that shapes the sampled tokens.
_SAMPLING_FIELDS = (
    "max_tokens",
    "max_completion_tokens",
    "ignore_eos",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
)
# Request fields the check understands (the OpenAI ones the gateway validates, and the vLLM ones
# the validator's harness sends, so that its requests are judged like any other). Anything else
# (tools, logit_bias, top_k, response_format...) changes what an honest model answers in ways not
# replayed here.
_JUDGED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "n",
        "logprobs",
        "top_logprobs",
        "return_tokens_as_token_ids",
        "user",
        *_SAMPLING_FIELDS,
    }
)
_PENALTIES = ("presence_penalty", "frequency_penalty")
_FINISHED = ("stop", "length")

OrganicRule = Literal["greedy", "sampled"]


class OrganicRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the check replays of a user's chat request."""

    messages: list[dict[str, Any]]
    sampling: dict[str, Any]

    @property
    def greedy(self) -> bool:
        """Temperature 0 on the raw logits: every token should be the reference's argmax."""
        return self.sampling.get("temperature") == 0 and not any(
            self.sampling.get(name) for name in _PENALTIES
        )


class OrganicVerdict(msgspec.Struct, frozen=True, kw_only=True):
    passed: bool
    rule: OrganicRule
    reason: OrganicReason
    details: str
    answer_tokens: int
    reference_tokens: int
    # greedy: share of tokens beyond the tolerance; sampled: nats below the reference's answer.
    gap: float


def organic_request(body: bytes) -> OrganicRequest | None:
    """The judgeable part of a chat request the gateway accepted; None if it is not judged."""
    try:
        request = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(request, dict) or request.keys() - _JUDGED_FIELDS:
        return None
    temperature = request.get("temperature")
    if temperature is not None and temperature > SAMPLED_MAX_TEMPERATURE:
        return None
    sampling = {name: request[name] for name in _SAMPLING_FIELDS if request.get(name) is not None}
    return OrganicRequest(messages=request["messages"], sampling=sampling)


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []


_completion_decoder = msgspec.json.Decoder(_Completion)


def answer_of_completion(body: bytes) -> str | None:
    """The answer text of a whole chat completion; None unless it finished normally."""
    try:
        choices = _completion_decoder.decode(body).choices
    except msgspec.DecodeError:
        return None
    if len(choices) != 1 or choices[0].finish_reason not in _FINISHED:
        return None
    return (choices[0].message or _Message()).content or ""


class AnswerCollector:
    """The answer text of a streamed chat completion, gathered from its SSE bytes as they pass."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._pending = b""
        self._finish_reason: str | None = None

    def feed(self, chunk: bytes) -> None:
        events, self._pending = split_events(self._pending + chunk)
        for event in events:
            if not event.startswith(b"data:"):
                continue
            try:
                choices = _completion_decoder.decode(event[5:]).choices
            except msgspec.DecodeError:
                continue  # `[DONE]`, or an error event: the answer is then unfinished
            for choice in choices:
                if choice.delta is not None and choice.delta.content:
                    self._parts.append(choice.delta.content)
                self._finish_reason = choice.finish_reason or self._finish_reason

    def answer(self) -> str | None:
        """The text so far if the stream told why it finished, else None."""
        return "".join(self._parts) if self._finish_reason in _FINISHED else None


def judge_greedy(scored: Sequence[tuple[float, float]]) -> OrganicVerdict | None:
    """``scored``: (logprob, argmax logprob) of each answer token under the reference."""
    if len(scored) < MIN_JUDGED_TOKENS:
        return None
    off = sum(argmax - lp > ARGMAX_LOGPROB_TOLERANCE for lp, argmax in scored) / len(scored)
    passed = off <= GREEDY_MAX_OFF_SHARE
    return OrganicVerdict(
        passed=passed,
        rule="greedy",
        reason="ok" if passed else "off_argmax",
        details=""
        if passed
        else (
            f"{off:.0%} of the answer's {len(scored)} tokens lie more than "
            f"{ARGMAX_LOGPROB_TOLERANCE} nats below the reference's argmax (allowed: "
            f"{GREEDY_MAX_OFF_SHARE:.0%}) on a temperature-0 request"
        ),
        answer_tokens=len(scored),
        reference_tokens=0,
        gap=off,
    )


def _mean_logprob(scored: Sequence[tuple[float, float]]) -> float:
    return statistics.fmean(lp for lp, _ in scored)


def judge_sampled(
    scored: Sequence[tuple[float, float]], reference: Sequence[tuple[float, float]]
) -> OrganicVerdict | None:
    """``scored`` as for :func:`judge_greedy`; ``reference``: the reference's own answer, scored."""
    if min(len(scored), len(reference)) < MIN_JUDGED_TOKENS:
        return None
    gap = _mean_logprob(reference) - _mean_logprob(scored)
    start = MIN_JUDGED_TOKENS
    start_gap = _mean_logprob(reference[:start]) - _mean_logprob(scored[:start])
    passed = min(gap, start_gap) <= SAMPLED_MAX_MEAN_GAP
    return OrganicVerdict(
        passed=passed,
        rule="sampled",
        reason="ok" if passed else "improbable",
        details=""
        if passed
        else (
            f"the answer's {len(scored)} tokens average {gap:.2f} nats (its first {start}: "
            f"{start_gap:.2f}) below the reference's own answer to the same request (allowed: "
            f"{SAMPLED_MAX_MEAN_GAP})"
        ),
        answer_tokens=len(scored),
        reference_tokens=len(reference),
        gap=gap,
    )


class _Position(NamedTuple):
    """One token of a split, re-scored by teacher forcing."""

    token: int
    text: str  # the token decoded alone, as vLLM's prompt logprobs give it
    logprob: float
    argmax: float


def _positions(token_ids: list[int], entries: list[dict]) -> list[_Position]:
    return [
        _Position(token_id, entry[str(token_id)].get("decoded_token") or "", logprob, argmax)
        for token_id, entry, (logprob, argmax) in zip(
            token_ids, entries, Rescorer.scored(token_ids, entries), strict=True
        )
    ]


def _fitting(token_ids: list[int], top_logprobs: list[dict[str, float]]) -> list[list[int]]:
    """Per position, the other tokens worth trying there, most likely first.

    The constrained decode's logprobs are taken after the grammar's mask, so they are each
    token's share among those that continue the text (a masked one shows as -9999).
    """
    fitting = []
    for chosen, top in zip(token_ids, top_logprobs, strict=False):
        listed = (top or {}).items()
        allowed = sorted((lp, key) for key, lp in listed if lp >= SEGMENT_MIN_LOGPROB)
        ids = [int(key.removeprefix("token_id:")) for _, key in reversed(allowed)]
        fitting.append([token for token in ids if token != chosen])
    return fitting


def _total(positions: list[_Position]) -> float:
    return sum(position.logprob for position in positions)


class ReferenceEngine(Rescorer):
    """The gate's re-scorer plus what the organic check asks of the reference engine."""

    async def follow(self, prefix: list[int], text: str) -> tuple[list[int], list[list[int]]]:
        """Token ids the reference picks for exactly ``text`` after ``prefix``, greedily, and at
        each of them the other tokens that would have continued the text (see :func:`_fitting`)."""
        body = {
            "model": self._model,
            "prompt": prefix,
            # Every token holds at least one byte of the text, and the end takes one more.
            "max_tokens": len(text.encode()) + 1,
            "temperature": 0.0,
            "structured_outputs": {"choice": [text]},
            "return_token_ids": True,
            "logprobs": SEGMENT_CANDIDATES,
            "return_tokens_as_token_ids": True,
        }
        choice = (await self._post("/v1/completions", body))["choices"][0]
        if choice.get("text") != text or not choice.get("token_ids"):
            raise InconclusiveError(
                f"the reference at {self._url} did not reproduce a {len(text)}-character answer "
                f"under structured outputs (got {str(choice.get('text'))[:60]!r}); does it "
                "support structured_outputs and return_token_ids?"
            )
        token_ids = choice["token_ids"]
        return token_ids, _fitting(token_ids, choice["logprobs"]["top_logprobs"])

    async def split(self, prefix: list[int], token_ids: list[int]) -> list[_Position]:
        return _positions(token_ids, await self.prompt_logprobs(prefix, token_ids))

    async def own_answer(self, request: OrganicRequest) -> list[int]:
        """The reference's own answer to ``request``, sampled with the same parameters."""
        body = {
            **request.sampling,
            "model": self._model,
            "messages": request.messages,
            "return_token_ids": True,
        }
        choice = (await self._post("/v1/chat/completions", body))["choices"][0]
        return choice.get("token_ids") or []


async def segment(
    engine: ReferenceEngine, prefix: list[int], text: str, tries: int
) -> list[_Position]:
    """The most likely split of ``text`` found by constrained greedy decoding and up to ``tries``
    other tokens tried in its place (see the module docstring)."""
    path, fitting = await engine.follow(prefix, text)
    best = await engine.split(prefix, path)
    index = 0
    while index < len(best) and tries > 0:
        before = "".join(position.text for position in best[:index])
        if not text.startswith(before):
            break  # a character split over two tokens: where the text stands is unknown
        rest = text[len(before) :]
        for token in fitting[index][:tries]:
            tries -= 1
            token_text = await engine.detokenize([token])
            if not token_text or not rest.startswith(token_text):
                continue
            head = [position.token for position in best[:index]] + [token]
            tail, tail_fitting = (
                await engine.follow(prefix + head, rest[len(token_text) :])
                if rest != token_text
                else ([], [])
            )
            candidate = await engine.split(prefix, head + tail)
            if _total(candidate) > _total(best):
                others = [best[index].token, *(t for t in fitting[index] if t != token)]
                fitting = [*fitting[:index], others, *tail_fitting]
                best = candidate
                break
        index += 1
    return best


async def check_answer(
    engine: ReferenceEngine, request: OrganicRequest, answer: str
) -> OrganicVerdict | None:
    """Judge one organic answer; None when it is not judged. Raises InconclusiveError when the
    reference engine fails."""
    if not answer or not (request.greedy or JUDGE_SAMPLED):
        return None
    prefix = await engine.chat_ids(request.messages)
    if request.greedy:
        positions = await segment(engine, prefix, answer, tries=0)
        return judge_greedy([(p.logprob, p.argmax) for p in positions])
    positions = await segment(engine, prefix, answer, tries=SEGMENT_TRIES)
    own = await engine.own_answer(request)
    if not own:
        return None
    reference = await engine.rescore(prefix, own)
    return judge_sampled([(p.logprob, p.argmax) for p in positions], reference)
