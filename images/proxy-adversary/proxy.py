"""Adversary miners that cheat from inside a real server: the engine behind, a proxy in front.

    python proxy.py --mode MODE --engine http://127.0.0.1:8001 --port 8000 [--host 0.0.0.0]

The engine is an honest vLLM; the proxy answers ``POST /v1/chat/completions`` in one of these
ways (the image's ``ARENA_ADVERSARY`` picks one) and forwards every other request unchanged:

    replay         remembers each streamed answer, keyed by the messages and sampling
                   parameters; the same request again is answered from memory at once, without
                   the engine, still one event per write
    stream_one     streams the first answer it serves as the engine makes it; every later answer
                   is held until complete, then sent in one write
    organic_cheat  a request that looks like the validator's (``logprobs`` asked, temperature 0)
                   goes to the engine; any other is answered without it: ``max_tokens`` tokens
                   of the model's tokenizer, arbitrary but valid, at once

Every answer carries ``x-adversary-engine-calls``: how many chat completions the proxy has sent
to the engine so far, so a test can tell an answer the engine never saw.
Only libraries of the base image's vLLM environment are used (httpx, starlette, uvicorn,
tokenizers), so the same file runs in the image and on a host with vLLM installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Literal

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tokenizers import Tokenizer

Mode = Literal["replay", "stream_one", "organic_cheat"]
MODES: tuple[Mode, ...] = Mode.__args__

ENGINE_CALLS_HEADER = "x-adversary-engine-calls"
# What decides an answer besides the messages: the remembered answer is replayed only to a
# request that would have produced the same one.
SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "min_tokens",
    "ignore_eos",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logprobs",
    "top_logprobs",
    "return_tokens_as_token_ids",
)
# The cheap answer's length when the request sets none.
DEFAULT_CHEAP_TOKENS = 64
FAKE_LOGPROB = -0.5
# Headers about one connection rather than the answer: the proxy's own server sets these.
HOP_HEADERS = frozenset(
    ("connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server")
)
DONE_EVENT = b"data: [DONE]\n\n"

log = logging.getLogger("proxy-adversary")


# --- decisions (pure) -------------------------------------------------------------------------


def replay_key(body: dict) -> str:
    return json.dumps({key: body.get(key) for key in ("messages", *SAMPLING_KEYS)}, sort_keys=True)


def looks_like_validator(body: dict) -> bool:
    return bool(body.get("logprobs")) and body.get("temperature") == 0


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete SSE events (each with its blank-line end) and the incomplete tail."""
    *events, tail = buffer.split(b"\n\n")
    return [event + b"\n\n" for event in events], tail


def plain_word_tokens(tokenizer: Tokenizer) -> list[int]:
    """Tokens that are one space and a lowercase word, and encode back to themselves alone.

    Any sequence of them decodes to text that re-tokenizes to the same ids, so the cheap answer
    is exactly ``max_tokens`` tokens long to whoever counts them.
    """
    pool = []
    for token_id in range(tokenizer.get_vocab_size()):
        text = tokenizer.decode([token_id])
        if re.fullmatch(" [a-z]+", text) and tokenizer.encode(
            text, add_special_tokens=False
        ).ids == [token_id]:
            pool.append(token_id)
    if not pool:
        raise RuntimeError("the tokenizer has no ' word' tokens to make cheap answers from")
    return pool


def answer_length(body: dict) -> int:
    return int(body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_CHEAP_TOKENS)


def logprob_entry(token_id: int, text: str, body: dict) -> dict:
    label = f"token_id:{token_id}" if body.get("return_tokens_as_token_ids") else text
    entry = {"token": label, "logprob": FAKE_LOGPROB, "bytes": list(text.encode())}
    return {**entry, "top_logprobs": [entry] if body.get("top_logprobs") else []}


def cheap_events(
    body: dict, token_ids: list[int], texts: list[str], prompt_tokens: int
) -> list[bytes]:
    """The chunks (then ``[DONE]``) of a streamed answer of ``token_ids``, as vLLM shapes them."""
    head = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", ""),
    }
    opening = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None}
    chunks: list[dict] = [{**head, "choices": [{**opening, "finish_reason": None}]}]
    for position, (token_id, text) in enumerate(zip(token_ids, texts, strict=True)):
        logprobs = {"content": [logprob_entry(token_id, text, body)]}
        last = position == len(token_ids) - 1
        choice = {
            "index": 0,
            "delta": {"content": text},
            "logprobs": logprobs if body.get("logprobs") else None,
            "finish_reason": "length" if last else None,
        }
        chunks.append({**head, "choices": [choice]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**head, "choices": [], "usage": usage(prompt_tokens, len(token_ids))})
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [DONE_EVENT]


def cheap_completion(
    body: dict, token_ids: list[int], texts: list[str], prompt_tokens: int
) -> dict:
    """A non-streamed answer of ``token_ids``, as vLLM shapes it."""
    entries = [logprob_entry(t, text, body) for t, text in zip(token_ids, texts, strict=True)]
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "".join(texts)},
        "logprobs": {"content": entries} if body.get("logprobs") else None,
        "finish_reason": "length",
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [choice],
        "usage": usage(prompt_tokens, len(token_ids)),
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def prompt_text(messages: Iterable[dict]) -> str:
    parts = []
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):  # OpenAI content parts
            content = " ".join(part.get("text", "") for part in content)
        parts.append(content)
    return "\n".join(parts)


def forwarded_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name: value for name, value in headers if name.lower() not in HOP_HEADERS}


# --- the proxy (effects) ----------------------------------------------------------------------


class Adversary:
    def __init__(self, mode: Mode, engine: str, tokenizer_path: str) -> None:
        self.mode = mode
        self.engine = httpx.AsyncClient(base_url=engine, timeout=None)
        self.engine_calls = 0
        self.remembered: dict[str, list[bytes]] = {}
        self.streamed_one = False
        self.tokenizer: Tokenizer | None = None
        self.pool: list[int] = []
        self.rng = random.Random()
        if mode == "organic_cheat":
            self.tokenizer = Tokenizer.from_file(tokenizer_path)
            self.pool = plain_word_tokens(self.tokenizer)

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/{path:path}", self.passthrough, methods=methods),
            ]
        )

    async def open_engine(self, request: Request, content: bytes) -> httpx.Response:
        if request.url.path == "/v1/chat/completions":
            self.engine_calls += 1
        upstream = self.engine.build_request(
            request.method,
            request.url.path,
            params=request.query_params.multi_items(),
            headers=forwarded_headers(request.headers.items()),
            content=content,
        )
        return await self.engine.send(upstream, stream=True)

    def counted(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        return {**(headers or {}), ENGINE_CALLS_HEADER: str(self.engine_calls)}

    async def passthrough(self, request: Request) -> Response:
        try:
            reply = await self.open_engine(request, await request.body())
        except httpx.TransportError as exc:
            return engine_unreachable(exc)
        return StreamingResponse(
            raw(reply),
            status_code=reply.status_code,
            headers=self.counted(forwarded_headers(reply.headers.items())),
        )

    async def chat(self, request: Request) -> Response:
        content = await request.body()
        body = json.loads(content)
        streamed = bool(body.get("stream"))
        if self.mode == "organic_cheat" and not looks_like_validator(body):
            return self.cheap(body)
        if self.mode == "replay" and streamed and (events := self.remembered.get(replay_key(body))):
            log.info("replay: answered from memory, %d events", len(events))
            return self.stream(iter_async(events), {"content-type": "text/event-stream"})
        if not streamed:
            return await self.passthrough(request)
        try:
            reply = await self.open_engine(request, content)
        except httpx.TransportError as exc:
            return engine_unreachable(exc)
        headers = forwarded_headers(reply.headers.items())
        if reply.status_code != 200:
            return self.stream(relay(reply), headers, reply.status_code)
        if self.mode == "replay":
            return self.stream(self.remember(reply, replay_key(body)), headers)
        if self.mode == "stream_one":
            first, self.streamed_one = not self.streamed_one, True
            if not first:
                log.info("stream_one: holding an answer until it is complete")
                return self.stream(held(reply), headers)
        return self.stream(relay(reply), headers)

    def stream(
        self, events: AsyncIterator[bytes], headers: dict[str, str], status: int = 200
    ) -> StreamingResponse:
        # Starlette sends each yielded chunk as its own write, drained before the next.
        return StreamingResponse(events, status_code=status, headers=self.counted(headers))

    async def remember(self, reply: httpx.Response, key: str) -> AsyncIterator[bytes]:
        events = []
        async for event in relay(reply):
            events.append(event)
            yield event
        if events and events[-1] == DONE_EVENT:  # only a whole answer is worth replaying
            self.remembered[key] = events

    def cheap(self, body: dict) -> Response:
        assert self.tokenizer is not None
        token_ids = self.rng.choices(self.pool, k=answer_length(body))
        texts = [self.tokenizer.decode([token_id]) for token_id in token_ids]
        prompt = self.tokenizer.encode(prompt_text(body.get("messages") or []))
        log.info("organic_cheat: %d cheap tokens, engine not asked", len(token_ids))
        if body.get("stream"):
            events = cheap_events(body, token_ids, texts, len(prompt.ids))
            return self.stream(iter_async(events), {"content-type": "text/event-stream"})
        answer = cheap_completion(body, token_ids, texts, len(prompt.ids))
        return JSONResponse(answer, headers=self.counted())


def engine_unreachable(exc: httpx.TransportError) -> Response:
    # The engine is still loading (or died): not healthy, so the validator keeps waiting.
    return Response(f"the engine behind the proxy is unreachable: {exc!r}", status_code=503)


async def raw(reply: httpx.Response) -> AsyncIterator[bytes]:
    """The engine's bytes as they come (closing its stream even if the client leaves)."""
    try:
        async for chunk in reply.aiter_raw():
            yield chunk
    finally:
        await reply.aclose()


async def relay(reply: httpx.Response) -> AsyncIterator[bytes]:
    """The engine's SSE events, each as soon as it is complete."""
    try:
        pending = b""
        async for chunk in reply.aiter_raw():
            events, pending = split_events(pending + chunk)
            for event in events:
                yield event
        if pending:
            yield pending
    finally:
        await reply.aclose()


async def held(reply: httpx.Response) -> AsyncIterator[bytes]:
    yield b"".join([event async for event in relay(reply)])


async def iter_async(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--engine", required=True, help="the real engine's base URL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument(
        "--tokenizer",
        default="/models/tokenizer.json",
        help="the served model's tokenizer (organic_cheat's cheap answers are made of its tokens)",
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    adversary = Adversary(options.mode, options.engine, options.tokenizer)
    uvicorn.run(adversary.app(), host=options.host, port=options.port, log_level="warning")


if __name__ == "__main__":
    main()
