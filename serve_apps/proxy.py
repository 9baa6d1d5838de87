"""Forwarding completions to an upstream OpenAI server, streaming bytes through as they come.

A stream is relayed event by event: each complete SSE event goes out the moment its last byte
arrives, and only a partial event (which a client could not use yet) is held back. That keeps the
stream unbuffered while guaranteeing that, if the upstream dies mid-stream, the client gets whole
events followed by one clean error event, never half a JSON line.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx
import msgspec

from harness.sse import split_events
from serve_apps.openai_schema import ApiError, error_body
from serve_apps.upstreams import Upstreams

__all__ = ["Usage", "open_upstream", "relay_stream", "request_usage", "usage_of_completion"]


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _UsageCarrier(msgspec.Struct):
    # Only `usage` is decoded; `choices` is kept raw so a usage-only chunk can be recognised.
    usage: Usage | None = None
    choices: list[msgspec.Raw] = []


_usage_decoder = msgspec.json.Decoder(_UsageCarrier)
_dict_decoder = msgspec.json.Decoder(dict)
_encoder = msgspec.json.Encoder()


def request_usage(body: bytes) -> bytes:
    """The request with ``stream_options.include_usage`` on, so the gateway can count tokens."""
    request = _dict_decoder.decode(body)
    options = request.get("stream_options") or {}
    request["stream_options"] = {**options, "include_usage": True}
    return _encoder.encode(request)


def usage_of_completion(body: bytes) -> Usage:
    try:
        return _usage_decoder.decode(body).usage or Usage()
    except msgspec.DecodeError:
        return Usage()


def _take_usage(events: list[bytes], keep_usage_chunk: bool) -> tuple[list[bytes], Usage | None]:
    """Find the usage chunk among complete events; drop it if the client did not ask for it."""
    usage = None
    kept = []
    for event in events:
        if b'"usage"' in event and event.startswith(b"data:"):
            try:
                carrier = _usage_decoder.decode(event[5:])
            except msgspec.DecodeError:
                carrier = _UsageCarrier()
            if carrier.usage is not None:
                usage = carrier.usage
                if not carrier.choices and not keep_usage_chunk:
                    continue
        kept.append(event)
    return kept, usage


async def open_upstream(
    client: httpx.AsyncClient, upstreams: Upstreams, path: str, body: bytes
) -> tuple[str, httpx.Response]:
    """Send ``body`` to ``path`` on the first upstream that answers; a refused connection or a
    5xx moves to the next.

    Nothing has reached the client yet at this point, so trying the next server is safe.
    """
    failures = []
    for endpoint in upstreams.order(time.monotonic()):
        request = client.build_request(
            "POST",
            endpoint + path,
            content=body,
            headers={"content-type": "application/json"},
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            upstreams.mark_down(endpoint, time.monotonic())
            failures.append(f"{endpoint}: {type(exc).__name__}")
            continue
        if response.status_code >= 500:
            await response.aclose()
            upstreams.mark_down(endpoint, time.monotonic())
            failures.append(f"{endpoint}: HTTP {response.status_code}")
            continue
        return endpoint, response
    raise ApiError(
        502,
        "no upstream server could take the request (" + "; ".join(failures) + "); retry shortly",
        type="server_error",
        code="upstream_unavailable",
    )


async def relay_stream(
    response: httpx.Response,
    *,
    keep_usage_chunk: bool,
    on_upstream_failure: Callable[[], None],
    on_done: Callable[[Usage, bool], None],
) -> AsyncIterator[bytes]:
    """Yield the upstream's SSE events as they complete; end with an error event if it breaks."""
    usage = Usage()
    failed = False
    pending = b""
    try:
        async for chunk in response.aiter_raw():
            events, pending = split_events(pending + chunk if pending else chunk)
            if any(b'"usage"' in event for event in events):
                events, found = _take_usage(events, keep_usage_chunk)
                usage = found or usage
            if events:
                yield b"".join(event + b"\n\n" for event in events)
    except httpx.HTTPError as exc:
        failed = True
        on_upstream_failure()
        message = f"the upstream server failed mid-stream ({type(exc).__name__}); retry the request"
        yield b"data: " + error_body(message, type="server_error", code="upstream_failed") + b"\n\n"
    finally:
        await response.aclose()
        on_done(usage, failed)
