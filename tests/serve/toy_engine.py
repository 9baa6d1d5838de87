"""A toy reference engine and toy kings, for testing the organic check without vLLM.

The toy model has five tokens and looks at the last one only: token 0 is the whole prompt; after
"a" it expects "c" and finds anything else very unlikely, so a wrong split makes the rest of a
text nonsense, as on the random tiny model. Its greedy answer is "acac...".

:class:`ToyReference` answers what :class:`serve_apps.organic_check.ReferenceEngine` asks
(``/tokenize``, ``/detokenize``, structured-output and prompt-logprob ``/v1/completions``,
``/v1/chat/completions`` with token ids) as an httpx MockTransport handler or, through
:func:`reference_app`, over HTTP.
:func:`king_app` is a king that answers every chat or text completion with the text it is given.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

__all__ = ["TEXT", "ToyReference", "greedy_text", "king_app", "reference_app"]

TEXT = {1: "a", 2: "b", 3: "ab", 4: "c"}
_UNLIKELY = -20.0
_TABLE = {
    0: {1: 0.0, 3: -0.5, 2: _UNLIKELY, 4: _UNLIKELY},
    1: {4: 0.0, 1: _UNLIKELY, 2: _UNLIKELY, 3: _UNLIKELY},
    2: {1: 0.0, 4: _UNLIKELY, 2: _UNLIKELY, 3: _UNLIKELY},
    3: {1: 0.0, 4: -1.0, 2: _UNLIKELY, 3: _UNLIKELY},
    4: {1: 0.0, 3: -0.5, 2: _UNLIKELY, 4: _UNLIKELY},
}


def greedy_text(tokens: int) -> str:
    """The toy model's greedy answer of ``tokens`` tokens."""
    return "".join(TEXT[t] for t in _greedy([0], tokens))


def logprobs_after(context: list[int]) -> dict[int, float]:
    logits = _TABLE[context[-1]]
    norm = math.log(sum(math.exp(v) for v in logits.values()))
    return {token: value - norm for token, value in logits.items()}


def _greedy(context: list[int], tokens: int) -> list[int]:
    out: list[int] = []
    for _ in range(tokens):
        options = logprobs_after(context + out)
        out.append(max(options, key=options.__getitem__))
    return out


def _constrained_greedy(context: list[int], text: str) -> tuple[list[int], list[dict]]:
    """Token ids, and per token vLLM's top logprobs after the grammar's mask (-9999: masked)."""
    out: list[int] = []
    tops = []
    while text:
        options = logprobs_after(context + out)
        allowed = [t for t in TEXT if text.startswith(TEXT[t])]
        norm = math.log(sum(math.exp(options[t]) for t in allowed))
        tops.append(
            {
                f"token_id:{t}": options[t] - norm if t in allowed else -9999.0
                for t in sorted(options, key=lambda t: -options[t])
            }
        )
        token = max(allowed, key=options.__getitem__)
        out.append(token)
        text = text[len(TEXT[token]) :]
    return out, tops


def _entry(context: list[int], token: int, top: int) -> dict[str, dict]:
    options = logprobs_after(context)
    listed = sorted(options, key=lambda t: -options[t])[:top] + [token]
    return {str(t): {"logprob": options[t], "rank": 1, "decoded_token": TEXT[t]} for t in listed}


class ToyReference:
    """Answers the reference engine's requests from the toy model and records them.

    ``gate``, when set, holds every ``/tokenize`` until it is set (to keep checks busy).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.gate: threading.Event | None = None

    def answer(self, path: str, payload: dict) -> tuple[int, dict]:
        self.requests.append((path, payload))
        if path == "/tokenize":
            assert payload["add_generation_prompt"] and payload["messages"]
            return 200, {"tokens": [0]}
        if path == "/detokenize":
            return 200, {"prompt": "".join(TEXT[t] for t in payload["tokens"])}
        if path == "/v1/chat/completions":
            assert payload["return_token_ids"] and payload["messages"]
            return 200, {"choices": [{"token_ids": _greedy([0], payload["max_tokens"])}]}
        if path != "/v1/completions":
            return 404, {"error": f"no {path} here"}
        prompt = payload["prompt"]
        if "structured_outputs" in payload:
            assert payload["return_tokens_as_token_ids"] and payload["logprobs"] >= len(TEXT)
            (text,) = payload["structured_outputs"]["choice"]
            ids, tops = _constrained_greedy(prompt, text)
            choice = {
                "text": "".join(TEXT[t] for t in ids),
                "token_ids": ids,
                "logprobs": {"top_logprobs": tops},
            }
            return 200, {"choices": [choice]}
        assert payload["prompt_logprobs"] == 1
        entries = [None] + [_entry(prompt[:i], prompt[i], 1) for i in range(1, len(prompt))]
        return 200, {"choices": [{"prompt_logprobs": entries}]}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        status, body = self.answer(request.url.path, json.loads(request.content))
        return httpx.Response(status, json=body)


def reference_app(toy: ToyReference) -> Starlette:
    async def handle(request: Request) -> Response:
        if toy.gate is not None and request.url.path == "/tokenize":
            await asyncio.to_thread(toy.gate.wait)
        status, body = toy.answer(request.url.path, await request.json())
        return Response(json.dumps(body), status, media_type="application/json")

    paths = ["/tokenize", "/detokenize", "/v1/completions", "/v1/chat/completions"]
    return Starlette(routes=[Route(path, handle, methods=["POST"]) for path in paths])


def _chunk(choice: dict[str, Any], finish: str | None) -> bytes:
    choice = {"index": 0, **choice, "finish_reason": finish}
    return b"data: " + json.dumps({"id": "cmpl-toy", "choices": [choice]}).encode() + b"\n\n"


def king_app(answer: Callable[[dict], str], cut_after: int | None = None) -> Starlette:
    """A king answering each chat or text completion with ``answer(request)``, one character a
    token; with ``cut_after``, a stream breaks off (the connection drops) after that many events.
    """

    async def complete(request: Request) -> Response:
        payload = await request.json()
        text = answer(payload)
        chat = request.url.path == "/v1/chat/completions"
        usage = {"prompt_tokens": 1, "completion_tokens": len(text)}
        if not payload.get("stream"):
            whole = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            choice = {"index": 0, **whole, "finish_reason": "length"}
            body = {"id": "cmpl-toy", "choices": [choice], "usage": usage}
            return Response(json.dumps(body), media_type="application/json")
        events = [_chunk({"delta": {"role": "assistant"}}, None)] if chat else []
        events += [_chunk({"delta": {"content": c}} if chat else {"text": c}, None) for c in text]
        events.append(_chunk({"delta": {}} if chat else {"text": ""}, "length"))
        if (payload.get("stream_options") or {}).get("include_usage"):
            usage_chunk = {"id": "cmpl-toy", "choices": [], "usage": usage}
            events.append(b"data: " + json.dumps(usage_chunk).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")

        async def stream():
            for n, event in enumerate(events):
                if n == cut_after:
                    raise ConnectionAbortedError(f"the toy king dies after {cut_after} tokens")
                yield event

        return StreamingResponse(stream(), media_type="text/event-stream")

    paths = ["/v1/chat/completions", "/v1/completions"]
    return Starlette(routes=[Route(path, complete, methods=["POST"]) for path in paths])
