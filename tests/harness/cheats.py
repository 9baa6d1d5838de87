"""Cheating servers: small HTTP proxies in front of a real vLLM that tamper with its stream.

``CheatProxy(upstream_url, cheat)`` runs an asyncio server on a free loopback port in its own
thread (so synchronous tests can drive the harness with ``asyncio.run``). It forwards
``POST /v1/chat/completions`` to vLLM and rewrites the SSE events according to ``cheat``:

- ``garbage``: correct first tokens, then other (valid, consistent) tokens with the same logprobs
- ``buffer``: holds every event until the answer is complete, then flushes them at once
- ``fake_logprobs``: reports logprob 0.0 (certainty) for every token
- ``malformed``: the third event's JSON is cut in half
- ``hang``: stops sending after a few events and keeps the connection open
- ``truncate``: ends the answer early with ``finish_reason: stop`` and ``[DONE]``
- ``too_many``: asks vLLM for three times ``max_tokens`` and streams all of it
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Literal

import httpx
from tokenizers import Tokenizer

Cheat = Literal["garbage", "buffer", "fake_logprobs", "malformed", "hang", "truncate", "too_many"]
CHEATS: tuple[Cheat, ...] = Cheat.__args__

HONEST_PREFIX_TOKENS = 3


def _sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


class CheatProxy:
    def __init__(self, upstream: str, cheat: Cheat, model_dir: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self.cheat = cheat
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()
        self.url = ""

    def __enter__(self) -> CheatProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self._server.close()
            self._closing.set()  # releases hanging handlers so they end normally
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length))
            if self.cheat == "too_many":
                body["max_tokens"] *= 3
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
            )
            async with (
                httpx.AsyncClient(timeout=60) as client,
                client.stream("POST", self.upstream + "/v1/chat/completions", json=body) as up,
            ):
                await self._relay(up, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (e.g. the harness's stall timeout): nothing to answer
        finally:
            writer.close()

    async def _relay(self, upstream: httpx.Response, writer: asyncio.StreamWriter) -> None:
        held: list[bytes] = []
        events = 0
        tokens = 0
        async for line in upstream.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[len("data: ") :]
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            entries = (chunk["choices"][0].get("logprobs") or {}).get("content") or []
            events += 1
            if self.cheat == "garbage" and tokens + len(entries) > HONEST_PREFIX_TOKENS:
                self._garble(chunk, entries, first=max(0, HONEST_PREFIX_TOKENS - tokens))
            elif self.cheat == "fake_logprobs":
                for entry in entries:
                    entry["logprob"] = 0.0
            elif self.cheat == "truncate" and tokens >= HONEST_PREFIX_TOKENS:
                chunk["choices"][0].update(delta={}, logprobs=None, finish_reason="stop")
                writer.write(_sse(json.dumps(chunk)))
                break
            elif self.cheat == "hang" and events > HONEST_PREFIX_TOKENS:
                await writer.drain()
                await self._closing.wait()  # hold the connection open until the proxy stops
                return
            tokens += len(entries)
            out = json.dumps(chunk)
            if self.cheat == "malformed" and events == 3:
                out = out[: len(out) // 2]
            if self.cheat == "buffer":
                held.append(_sse(out))
            else:
                writer.write(_sse(out))
                await writer.drain()
        writer.write(b"".join(held) + _sse("[DONE]"))  # one write: the flush is one burst

    def _garble(self, chunk: dict, entries: list[dict], first: int) -> None:
        """Swap tokens from ``first`` on for other printable ones; ids, text, logprobs agree."""
        ids = [int(entry["token"].removeprefix("token_id:")) for entry in entries]
        for position in range(first, len(ids)):
            ids[position] = self._other_token(ids[position])
            entries[position]["token"] = f"token_id:{ids[position]}"
        chunk["choices"][0]["delta"]["content"] = self._tokenizer.decode(ids)

    def _other_token(self, token_id: int) -> int:
        for step in range(1, 200):
            candidate = (token_id + 97 * step) % 1000
            text = self._tokenizer.decode([candidate])
            if text.isascii() and text.isprintable() and text.strip():
                return candidate
        raise RuntimeError(f"no printable substitute for token {token_id}")
