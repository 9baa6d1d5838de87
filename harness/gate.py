"""Correctness gate: is the challenger serving the pinned model, honestly streamed?

The gate never trusts what the challenger says about itself. The challenger's streamed token
ids are re-scored by the baseline vLLM by teacher forcing: the chat-templated prompt followed by
the challenger's tokens is sent as one prompt to ``/v1/completions`` with ``prompt_logprobs``,
which returns, at every position, the baseline's logprob of the challenger's token and of the
baseline's own argmax. Checks, in order (the first that fails names the verdict):

1. every request succeeded (else ``malformed_stream`` / ``hang`` / ``request_failed``);
2. output length equals the baseline's (``truncated``) and no more than asked (``too_many_tokens``);
3. answers were streamed: fewer than ``BUFFERED_SHARE`` of the answers it can judge arrived in
   one network read while the baseline's answer to the same prompt streamed (``buffered_stream``);
4. the token ids decode to the streamed text (``text_mismatch``);
5. each token's logprob is within ``ARGMAX_LOGPROB_TOLERANCE`` of the argmax (``off_distribution``);
6. reported logprobs agree with the re-scored ones (``fabricated_logprobs``);
7. outputs share at least ``EXACT_MATCH_FLOOR`` of the baseline's greedy tokens as a common
   prefix, on average (``exact_match_floor``).

``check`` raises ``InconclusiveError`` when the validator's side cannot judge: the baseline failed
a request or cannot re-score, or the measurements cannot tell buffering from a starved client.
That is a validator fault: measure again rather than pass or fail the challenger.
"""

from __future__ import annotations

import asyncio
import statistics

import httpx
import msgspec

from harness.errors import HarnessError
from harness.loadgen import RequestResult
from harness.measurement import Measurement
from harness.profile import Profile
from harness.prompts import Prompt
from rules.reasons import GateReason, StreamReason

__all__ = [
    "GateVerdict",
    "InconclusiveError",
    "Rescored",
    "Rescorer",
    "check",
    "ARGMAX_LOGPROB_TOLERANCE",
    "REPORTED_LOGPROB_TOLERANCE",
    "EXACT_MATCH_FLOOR",
    "BUFFER_MIN_TOKENS",
    "BUFFERED_SHARE",
    "BUFFER_MIN_EVIDENCE",
    "CLIENT_STARVED_SHARE",
    "RESCORE_CONCURRENCY",
    "check_with_evidence",
    "judge",
]

# Tolerances, from measured honest-engine divergence on the local tiny model (vLLM CPU, fp32):
# eager vs compiled (torch.compile) servers, 2 seeds x 16 prompts x concurrency 1 and 4 x 32
# tokens: greedy tokens identical, every token's gap to the re-scored argmax 0.0, reported vs
# re-scored logprob at most 2.4e-4 nats; across restarts, identical outputs. Wrong tokens (the
# garbage proxy, the other-seed model) sit 5-22 nats below the argmax. The tolerances leave
# room for bf16 GPU kernels (near-ties of ~0.1 nats) yet stay far below what a wrong token costs.
ARGMAX_LOGPROB_TOLERANCE = 0.5  # nats below the re-scored argmax a streamed token may be
REPORTED_LOGPROB_TOLERANCE = 0.5  # nats a reported logprob may differ from the re-scored one
# Mean common-prefix share with the baseline's greedy output; honest engines measured 1.0.
EXACT_MATCH_FLOOR = 0.5
# Buffering is judged per answer. An answer of at least BUFFER_MIN_TOKENS tokens whose tokens
# all arrived in one network read was flushed at once. A buffering server does this to its
# answers; an honest one only when something is starved:
# - the client: on this 2-core VM, with busy processes beside the tiny vLLM, the measuring
#   thread sat runnable without a CPU for 130-160 ms of a 150-200 ms answer and then read all
#   64 honest tokens in one go. Such an answer (client_wait over CLIENT_STARVED_SHARE of its
#   latency) is no evidence either way. Sharing the 2 cores with vLLM alone, the client
#   waited for at most 6% of an answer; with one busy process more, up to 20%, and it still
#   saw every answer stream.
# - the server: vLLM's engine runs in its own process and merges tokens its API server has
#   not sent yet, so the baseline's answer to the same prompt, measured on the same node, is
#   the yardstick.
# So a challenger's answer is evidence when neither it nor the baseline's answer to its prompt
# was read by a starved client and the baseline's answer streamed; it is buffered when it
# arrived in one read. The gate fails a challenger when at least BUFFERED_SHARE of at least
# BUFFER_MIN_EVIDENCE evidenced answers are buffered: streaming one answer does not clear the
# others, and an honest answer flushed now and then stays far below the share. When the
# challenger's flushed answers reach the share but too few answers are evidence, the
# measurements cannot tell: measure again.
BUFFER_MIN_TOKENS = 4
BUFFERED_SHARE = 0.5
BUFFER_MIN_EVIDENCE = 4
CLIENT_STARVED_SHARE = 0.5
RESCORE_CONCURRENCY = 4


_STREAM_REASONS: frozenset[str] = frozenset(StreamReason.__args__) | {"empty"}


class GateVerdict(msgspec.Struct, frozen=True, kw_only=True):
    passed: bool
    reason: GateReason
    details: str
    max_argmax_gap: float = 0.0
    max_reported_gap: float = 0.0
    exact_match: float = 0.0


class InconclusiveError(HarnessError, RuntimeError):
    """The validator's side could not judge (see the module docstring): the verdict is unknown."""


def _fail(reason: GateReason, details: str, **extra: float) -> GateVerdict:
    return GateVerdict(passed=False, reason=reason, details=details, **extra)


def _pairs(baseline: Measurement, challenger: Measurement):
    """(concurrency, prompt, baseline result, challenger result) for every request measured.

    Each counted pass of the challenger is paired with the baseline's pass of the same level and
    number, which the plan gave the same prompts in the same positions.
    """
    for level in challenger.levels:
        base_level = baseline.run(level.concurrency, level.pass_index)
        if base_level.prompts != level.prompts:
            raise ValueError(
                f"pass {level.pass_index} at concurrency {level.concurrency} sent other prompts "
                "to the baseline than to the challenger; measure both with the same plan"
            )
        for prompt, base, chal in zip(
            level.prompts, base_level.results, level.results, strict=True
        ):
            yield level.concurrency, prompt, base, chal


def _failed_request(where: str, result: RequestResult) -> GateVerdict:
    code = result.error_code
    if code in _STREAM_REASONS:
        return _fail("malformed_stream", f"{where}: {result.error}")
    if code in ("stall", "timeout"):
        return _fail("hang", f"{where}: {result.error}")
    return _fail("request_failed", f"{where}: {result.error}")


def _failure_verdict(warmup: list[RequestResult], pairs) -> GateVerdict | None:
    # A failed warm-up request ends a measurement (harness.measure): it is judged like any other.
    for result in warmup:
        if not result.success:
            return _failed_request(f"warm-up prompt {result.prompt_index}", result)
    for concurrency, prompt, _, chal in pairs:
        if not chal.success:
            return _failed_request(f"prompt {prompt.index} at concurrency {concurrency}", chal)
    return None


def _length_verdict(pairs) -> GateVerdict | None:
    for concurrency, prompt, base, chal in pairs:
        where = f"prompt {prompt.index} at concurrency {concurrency}"
        if chal.output_len > prompt.output_tokens:
            return _fail(
                "too_many_tokens",
                f"{where}: {chal.output_len} tokens, max_tokens was {prompt.output_tokens}",
            )
        if base.success and chal.output_len < base.output_len:
            return _fail(
                "truncated", f"{where}: {chal.output_len} tokens, baseline {base.output_len}"
            )
    return None


def _flushed(result: RequestResult) -> bool:
    return result.arrivals[0] == result.arrivals[-1]


def _client_starved(result: RequestResult) -> bool:
    return result.client_wait > CLIENT_STARVED_SHARE * result.latency


def _buffer_verdict(pairs) -> GateVerdict | None:
    long = [
        (c, p, base, chal) for c, p, base, chal in pairs if chal.output_len >= BUFFER_MIN_TOKENS
    ]
    evidence = [
        (concurrency, prompt, chal)
        for concurrency, prompt, base, chal in long
        if not (_client_starved(chal) or _client_starved(base) or _flushed(base))
    ]
    buffered = [(concurrency, prompt) for concurrency, prompt, chal in evidence if _flushed(chal)]
    if len(evidence) >= BUFFER_MIN_EVIDENCE:
        if len(buffered) < BUFFERED_SHARE * len(evidence):
            return None
        concurrency, prompt = buffered[0]
        return _fail(
            "buffered_stream",
            f"{len(buffered)} of {len(evidence)} answers arrived in one piece while the "
            f"baseline's answer to the same prompt streamed (fails at {BUFFERED_SHARE:.0%}), "
            f"first prompt {prompt.index} at concurrency {concurrency}: stream tokens as they "
            "are generated",
        )
    flushed = sum(_flushed(chal) for *_, chal in long)
    if flushed and flushed >= BUFFERED_SHARE * len(long):
        raise InconclusiveError(
            f"{flushed} of the challenger's {len(long)} answers arrived in one piece, but only "
            f"{len(evidence)} (fewer than {BUFFER_MIN_EVIDENCE}) can be judged: the others "
            "were read by a client starved of CPU or the baseline's answer to the same prompt "
            "arrived in one piece too; measure the baseline and the challenger again on a "
            "quieter node"
        )
    return None


def _exact_match(pairs) -> float:
    shares = []
    for _, _, base, chal in pairs:
        if not base.success or not base.token_ids:
            continue
        prefix = 0
        for a, b in zip(base.token_ids, chal.token_ids, strict=False):
            if a != b:
                break
            prefix += 1
        shares.append(prefix / base.output_len)
    return statistics.fmean(shares) if shares else 0.0


class Rescorer:
    """Talks to the baseline vLLM: chat template, detokenize, teacher-forced prompt logprobs.

    The gateway's organic check (``serve_apps.organic_check``) re-scores with it too, so organic
    answers are judged by the same engine calls and ``ARGMAX_LOGPROB_TOLERANCE`` as the gate's.
    """

    def __init__(self, client: httpx.AsyncClient, url: str, model: str) -> None:
        self._client = client
        self._url = url.rstrip("/")
        self._model = model
        self._prompt_ids: dict[int, list[int]] = {}

    async def _post(self, path: str, body: dict) -> dict:
        try:
            response = await self._client.post(self._url + path, json=body)
        except httpx.HTTPError as exc:
            raise InconclusiveError(f"baseline {self._url}{path} unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise InconclusiveError(
                f"baseline {self._url}{path} answered {response.status_code}: "
                f"{response.text[:300]}; is it a vLLM OpenAI server?"
            )
        return response.json()

    async def chat_ids(self, messages: list[dict]) -> list[int]:
        """The chat-templated prompt's token ids, up to where the assistant's answer starts."""
        body = {"model": self._model, "messages": messages, "add_generation_prompt": True}
        return (await self._post("/tokenize", body))["tokens"]

    async def prompt_ids(self, prompt: Prompt) -> list[int]:
        if prompt.index not in self._prompt_ids:
            messages = [{"role": "user", "content": prompt.text}]
            self._prompt_ids[prompt.index] = await self.chat_ids(messages)
        return self._prompt_ids[prompt.index]

    async def detokenize(self, token_ids: list[int]) -> str:
        body = {"model": self._model, "tokens": token_ids}
        return (await self._post("/detokenize", body))["prompt"]

    async def prompt_logprobs(self, prefix: list[int], token_ids: list[int]) -> list[dict]:
        """Teacher forcing: at each of ``token_ids`` after ``prefix``, vLLM's entries keyed by
        token id (``logprob``, ``decoded_token``) for that token and the most likely one."""
        body = {
            "model": self._model,
            "prompt": prefix + token_ids,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 1,
        }
        entries = (await self._post("/v1/completions", body))["choices"][0]["prompt_logprobs"]
        return entries[len(prefix) :]

    async def rescore(self, prefix: list[int], token_ids: list[int]) -> list[tuple[float, float]]:
        """(logprob of each given token, logprob of the argmax) at each output position."""
        return self.scored(token_ids, await self.prompt_logprobs(prefix, token_ids))

    @staticmethod
    def scored(token_ids: list[int], entries: list[dict]) -> list[tuple[float, float]]:
        """:meth:`rescore`'s pairs from the entries :meth:`prompt_logprobs` returned."""
        scored = []
        for token_id, entry in zip(token_ids, entries, strict=True):
            token_lp = entry[str(token_id)]["logprob"]
            argmax_lp = max(candidate["logprob"] for candidate in entry.values())
            scored.append((token_lp, argmax_lp))
        return scored


class Rescored(msgspec.Struct, frozen=True, kw_only=True):
    """What the baseline said about one challenger answer: the evidence the token checks use.

    ``text`` is the answer's token ids detokenized by the baseline; at each position,
    ``token_logprobs`` is the baseline's logprob of the challenger's token and
    ``argmax_logprobs`` that of its own most likely token.
    """

    concurrency: int
    prompt_index: int
    text: str
    token_logprobs: list[float]
    argmax_logprobs: list[float]


async def _rescore(rescorer: Rescorer, pairs) -> list[Rescored]:
    semaphore = asyncio.Semaphore(RESCORE_CONCURRENCY)

    async def one(concurrency: int, prompt: Prompt, chal: RequestResult) -> Rescored:
        async with semaphore:
            text = await rescorer.detokenize(chal.token_ids)
            scored = await rescorer.rescore(await rescorer.prompt_ids(prompt), chal.token_ids)
        return Rescored(
            concurrency=concurrency,
            prompt_index=prompt.index,
            text=text,
            token_logprobs=[token for token, _ in scored],
            argmax_logprobs=[argmax for _, argmax in scored],
        )

    return list(await asyncio.gather(*(one(c, p, ch) for c, p, _, ch in pairs)))


def _token_verdict(pairs, rescored: list[Rescored]) -> GateVerdict:
    max_argmax_gap = max_reported_gap = 0.0
    for (concurrency, prompt, _, chal), judged in zip(pairs, rescored, strict=True):
        if (judged.concurrency, judged.prompt_index) != (concurrency, prompt.index):
            raise ValueError(
                f"re-scoring of prompt {judged.prompt_index} at concurrency "
                f"{judged.concurrency} given for prompt {prompt.index} at concurrency "
                f"{concurrency}: the evidence does not belong to these measurements"
            )
        where = f"prompt {prompt.index} at concurrency {concurrency}"
        if judged.text != chal.text:
            return _fail(
                "text_mismatch",
                f"{where}: streamed text {chal.text[:60]!r} but its token ids decode to "
                f"{judged.text[:60]!r}",
            )
        scored = zip(judged.token_logprobs, judged.argmax_logprobs, strict=True)
        for position, ((token_lp, argmax_lp), reported) in enumerate(
            zip(scored, chal.logprobs, strict=True)
        ):
            argmax_gap = argmax_lp - token_lp
            reported_gap = abs(reported - token_lp)
            max_argmax_gap = max(max_argmax_gap, argmax_gap)
            max_reported_gap = max(max_reported_gap, reported_gap)
            if argmax_gap > ARGMAX_LOGPROB_TOLERANCE:
                return _fail(
                    "off_distribution",
                    f"{where}, token {position}: {argmax_gap:.3f} nats below the baseline's "
                    f"argmax (tolerance {ARGMAX_LOGPROB_TOLERANCE})",
                    max_argmax_gap=argmax_gap,
                )
            if reported_gap > REPORTED_LOGPROB_TOLERANCE:
                return _fail(
                    "fabricated_logprobs",
                    f"{where}, token {position}: reported logprob {reported:.3f}, baseline "
                    f"re-scored {token_lp:.3f} (tolerance {REPORTED_LOGPROB_TOLERANCE})",
                    max_reported_gap=reported_gap,
                )
    exact_match = _exact_match(pairs)
    if exact_match < EXACT_MATCH_FLOOR:
        return _fail(
            "exact_match_floor",
            f"outputs share {exact_match:.0%} of the baseline's greedy tokens as a common prefix "
            f"(floor {EXACT_MATCH_FLOOR:.0%})",
            exact_match=exact_match,
            max_argmax_gap=max_argmax_gap,
            max_reported_gap=max_reported_gap,
        )
    return GateVerdict(
        passed=True,
        reason="ok",
        details="",
        max_argmax_gap=max_argmax_gap,
        max_reported_gap=max_reported_gap,
        exact_match=exact_match,
    )


def _judged_pairs(baseline: Measurement, challenger: Measurement) -> list:
    if (challenger.seed, challenger.slot) != (baseline.seed, baseline.slot):
        raise ValueError(
            f"the baseline was measured with slot {baseline.slot} of seed {baseline.seed[:18]}, "
            f"the challenger with slot {challenger.slot} of {challenger.seed[:18]}: the gate "
            "pairs answers to the same prompts, so measure both with the same plan"
        )
    pairs = list(_pairs(baseline, challenger))
    for concurrency, prompt, base, _ in pairs:
        if not base.success:
            raise InconclusiveError(
                f"the baseline failed prompt {prompt.index} at concurrency {concurrency}: "
                f"{base.error}; measure it again before judging a challenger"
            )
    return pairs


def _stream_verdict(challenger: Measurement, pairs) -> GateVerdict | None:
    """Checks 1-3, which need no re-scoring; None when the answers reach re-scoring."""
    return (
        _failure_verdict(challenger.warmup, pairs)
        or _length_verdict(pairs)
        or _buffer_verdict(pairs)
    )


async def check_with_evidence(
    baseline: Measurement,
    challenger: Measurement,
    *,
    rescore_url: str,
    profile: Profile,
) -> tuple[GateVerdict, list[Rescored]]:
    """:func:`check`, and the re-scoring it judged (empty when checks 1-3 decided)."""
    pairs = _judged_pairs(baseline, challenger)
    verdict = _stream_verdict(challenger, pairs)
    if verdict is not None:
        return verdict, []
    timeout = httpx.Timeout(profile.request_timeout_s)
    async with httpx.AsyncClient(timeout=timeout) as client:
        rescorer = Rescorer(client, rescore_url, profile.served_model_name)
        rescored = await _rescore(rescorer, pairs)
    return _token_verdict(pairs, rescored), rescored


async def check(
    baseline: Measurement,
    challenger: Measurement,
    *,
    rescore_url: str,
    profile: Profile,
) -> GateVerdict:
    """Judge ``challenger`` against ``baseline`` (same seed); ``rescore_url`` is a live baseline."""
    verdict, _ = await check_with_evidence(
        baseline, challenger, rescore_url=rescore_url, profile=profile
    )
    return verdict


def judge(baseline: Measurement, challenger: Measurement, rescored: list[Rescored]) -> GateVerdict:
    """The verdict :func:`check_with_evidence` gave, recomputed from its evidence alone.

    No engine is asked: the re-scoring is the stored one. Raises like :func:`check`.
    """
    pairs = _judged_pairs(baseline, challenger)
    return _stream_verdict(challenger, pairs) or _token_verdict(pairs, rescored)
