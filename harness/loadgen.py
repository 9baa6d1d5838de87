"""Load generator: streaming ``/v1/chat/completions`` requests at a fixed concurrency.

``send_request`` never raises for anything the server does (refusal, bad status, malformed
stream, timeout, hang): it returns a ``RequestResult`` with ``success=False`` and an ``error``
code, the way ``vllm bench serve`` records failures. ``run_level`` sends every prompt with at
most ``concurrency`` in flight and returns results in prompt order.

Every request is greedy (temperature 0), asks for ``max_tokens`` with ``ignore_eos`` so output
length is fixed, and asks for per-token logprobs with token ids (``return_tokens_as_token_ids``)
so the gate can re-score exactly the tokens that were streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import httpx
import msgspec

from harness.aiohttp_transport import AiohttpTransport
from harness.prompts import Prompt
from harness.sse import SSEParser, StreamError

__all__ = [
    "RequestResult",
    "chat_request_body",
    "make_client",
    "run_level",
    "send_request",
    "TOP_LOGPROBS",
]

# How far past stall_timeout_s a stall may be noticed; see _stream.
_STALL_SLACK_S = 0.5
# How many alternatives each token reports; the gate only needs the sampled token's logprob.
TOP_LOGPROBS = 1


class RequestResult(msgspec.Struct, kw_only=True):
    prompt_index: int
    success: bool
    # Empty on success; otherwise a reason code (`http_<status>`, `timeout`, `stall`, `connect`,
    # `transport` (the connection broke), or a `StreamReason`) followed by `: detail`.
    error: str = ""
    start: float = 0.0  # perf_counter when the request was sent
    ttft: float = 0.0  # seconds to the first token
    latency: float = 0.0  # seconds to the last token
    itl: list[float] = []  # gaps between successive token-bearing events
    token_ids: list[int] = []
    logprobs: list[float] = []
    arrivals: list[float] = []  # per token, seconds since start
    text: str = ""
    finish_reason: str | None = None
    # Seconds the measuring thread sat runnable without a CPU while this request was in flight
    # (Linux schedstat; 0.0 elsewhere). When it is a large share of the latency, the timings
    # and the network reads describe the starved client, not the server.
    client_wait: float = 0.0

    @property
    def output_len(self) -> int:
        return len(self.token_ids)

    @property
    def error_code(self) -> str:
        return self.error.split(":", 1)[0]


def chat_request_body(prompt: Prompt, model: str) -> dict:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt.text}],
        "stream": True,
        "temperature": 0.0,
        "max_tokens": prompt.output_tokens,
        "ignore_eos": True,
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "return_tokens_as_token_ids": True,
    }


def make_client(concurrency: int, request_timeout_s: float) -> httpx.AsyncClient:
    """The measuring client: httpx's API over aiohttp (see ``harness.aiohttp_transport``)."""
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=concurrency),
        timeout=httpx.Timeout(request_timeout_s),
    )


async def send_request(
    client: httpx.AsyncClient,
    base_url: str,
    prompt: Prompt,
    model: str,
    *,
    request_timeout_s: float,
    stall_timeout_s: float,
) -> RequestResult:
    """Stream one chat completion; silence over ``stall_timeout_s`` after a token fails it."""
    result = RequestResult(prompt_index=prompt.index, success=False)
    # Built before the clock starts: encoding is the client's work, not the server's latency.
    request = client.build_request(
        "POST",
        base_url.rstrip("/") + "/v1/chat/completions",
        content=msgspec.json.encode(chat_request_body(prompt, model)),
        headers={"content-type": "application/json"},
    )
    waited = _runqueue_wait_s()
    result.start = time.perf_counter()
    try:
        async with asyncio.timeout(request_timeout_s):
            await _stream(client, request, result, stall_timeout_s)
    except TimeoutError:
        if not result.error:
            result.error = f"timeout: no complete answer within {request_timeout_s:.0f} s"
    except StreamError as exc:
        result.error = f"{exc.reason}: {exc.detail}"
    except httpx.TimeoutException as exc:
        result.error = f"timeout: {type(exc).__name__}: {exc}"
    except httpx.HTTPError as exc:
        code = "connect" if isinstance(exc, httpx.ConnectError) else "transport"
        result.error = f"{code}: {type(exc).__name__}: {exc}"
    result.client_wait = _runqueue_wait_s() - waited
    result.success = not result.error
    return result


def _runqueue_wait_s() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (0.0 where not Linux)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            return int(stat.read().split()[1]) / 1e9
    except OSError:
        return 0.0


async def _stream(
    client: httpx.AsyncClient,
    request: httpx.Request,
    result: RequestResult,
    stall_timeout_s: float,
) -> None:
    parser = SSEParser()
    last_event = 0.0
    response = await client.send(request, stream=True)
    async with contextlib.aclosing(response):
        if response.status_code != 200:
            text = (await response.aread())[:200].decode(errors="replace")
            result.error = f"http_{response.status_code}: {text}"
            return
        # One stall timer, moved at most every _STALL_SLACK_S (moving it per chunk cost as much
        # as parsing the chunk): it fires after between stall_timeout_s and that plus the
        # slack of silence. Before the first token only the request timeout bounds the wait.
        loop = asyncio.get_running_loop()
        moved_at = -_STALL_SLACK_S
        try:
            async with asyncio.timeout(None) as stall:
                async for chunk in response.aiter_raw():
                    arrival = time.perf_counter() - result.start
                    for event in parser.feed(chunk, arrival):
                        if event.finish_reason is not None:
                            result.finish_reason = event.finish_reason
                        if not event.token_ids:
                            continue
                        if result.token_ids:
                            result.itl.append(arrival - last_event)
                        else:
                            result.ttft = arrival
                        last_event = arrival
                        result.token_ids.extend(event.token_ids)
                        result.logprobs.extend(event.logprobs)
                        result.arrivals.extend([arrival] * len(event.token_ids))
                        result.text += event.text
                    if result.token_ids and (now := loop.time()) - moved_at >= _STALL_SLACK_S:
                        stall.reschedule(now + stall_timeout_s + _STALL_SLACK_S)
                        moved_at = now
        except TimeoutError:
            if not stall.expired():
                raise  # the request timeout, handled by the caller
            result.error = f"stall: no data for {stall_timeout_s:.0f} s mid-stream"
            return
        parser.finish()
    if not result.token_ids:
        result.error = "empty: the stream carried no tokens"
        return
    result.latency = last_event


async def run_level(
    base_url: str,
    prompts: Sequence[Prompt],
    model: str,
    concurrency: int,
    *,
    request_timeout_s: float,
    stall_timeout_s: float,
    on_done=None,
) -> tuple[list[RequestResult], float]:
    """Send all ``prompts`` with ``concurrency`` in flight; returns (results, wall seconds).

    ``on_done`` (optional) is called with each finished ``RequestResult``, e.g. for a progress bar.
    """
    semaphore = asyncio.Semaphore(concurrency)

    async with make_client(concurrency, request_timeout_s) as client:

        async def one(prompt: Prompt) -> RequestResult:
            async with semaphore:
                result = await send_request(
                    client,
                    base_url,
                    prompt,
                    model,
                    request_timeout_s=request_timeout_s,
                    stall_timeout_s=stall_timeout_s,
                )
            if on_done is not None:
                on_done(result)
            return result

        started = time.perf_counter()
        results = await asyncio.gather(*(one(p) for p in prompts))
        duration = time.perf_counter() - started
    return list(results), duration
