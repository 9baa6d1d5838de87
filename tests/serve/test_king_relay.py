"""The king's relay (serve_apps/king_relay.py) between a client and a local streaming server.

The upstream is a plain asyncio HTTP/1.1 server that sends each SSE event as its own chunk only
when the test releases it, so a chunk seen by the client before the next is released has come
through the relay unbuffered, while the upstream is still answering.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import httpx
import pytest

from serve_apps.king_relay import Relay

T = TypeVar("T")
REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: king\r\nContent-Length: 2\r\n\r\n{}"
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


def event(i: int) -> bytes:
    return f"data: {{'token': {i}}}\n\n".encode()


def chunk(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(body), body)


class StreamingUpstream:
    """Answers one request per connection with the events put on ``release`` (None: the end)."""

    def __init__(self) -> None:
        self.release: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.requests: list[bytes] = []
        self.client_gone = asyncio.Event()  # the connection ended from the client's side
        self.server: asyncio.Server | None = None
        self.answers: list[asyncio.Task[None]] = []

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.answers.append(asyncio.create_task(self.answer(reader, writer)))

    async def stop(self) -> None:
        """End every answer still waiting for its next event, then stop listening."""
        for _ in self.answers:
            self.release.put_nowait(None)
        await asyncio.wait_for(asyncio.gather(*self.answers), 5)
        assert self.server is not None
        self.server.close()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head + await reader.readexactly(2))
        watch = asyncio.create_task(self._watch(reader))
        writer.write(HEAD)
        try:
            while (body := await self.release.get()) is not None:
                writer.write(chunk(body))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            await watch

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        self.client_gone.set()


@pytest.fixture
async def upstream() -> AsyncIterator[StreamingUpstream]:
    server = StreamingUpstream()
    server.server = await asyncio.start_server(server.accept, "127.0.0.1", 0)
    yield server
    await server.stop()


@pytest.fixture
async def relay(upstream: StreamingUpstream) -> AsyncIterator[Relay]:
    opened = await Relay.open("127.0.0.1", "127.0.0.1", upstream.port)
    yield opened
    await opened.close()


async def soon(awaitable: Awaitable[T], timeout_s: float = 5.0) -> T:
    return await asyncio.wait_for(awaitable, timeout_s)


async def mid_stream(
    relay: Relay, upstream: StreamingUpstream
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection through the relay whose answer has begun: the head and a first event read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(REQUEST)
    await upstream.release.put(event(0))
    assert (await soon(reader.readuntil(event(0) + b"\r\n"))).startswith(HEAD)
    return reader, writer


async def test_the_endpoint_is_the_listen_address_and_a_port_of_its_own(
    relay: Relay, upstream: StreamingUpstream
) -> None:
    assert relay.endpoint == f"http://127.0.0.1:{relay.port}"
    assert relay.port != upstream.port


async def test_each_chunk_arrives_in_order_before_the_upstream_sends_the_next(
    relay: Relay, upstream: StreamingUpstream
) -> None:
    events = [event(i) for i in range(5)]
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", f"{relay.endpoint}/v1/chat/completions", json={}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        received = response.aiter_raw()
        for body in events:
            await upstream.release.put(body)
            # The upstream is still answering: this chunk must come through on its own.
            assert await soon(anext(received)) == body
        await upstream.release.put(None)
        assert [rest async for rest in received] == []
    assert upstream.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")


async def test_bytes_pass_unchanged_and_the_upstream_closing_ends_the_client_connection(
    relay: Relay, upstream: StreamingUpstream
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(REQUEST)
    for i in range(3):
        await upstream.release.put(event(i))
    await upstream.release.put(None)
    received = await soon(reader.read())  # to EOF: the upstream closed, so the relay did
    assert received == HEAD + b"".join(chunk(event(i)) for i in range(3)) + b"0\r\n\r\n"
    assert upstream.requests == [REQUEST]
    writer.close()


async def test_the_client_closing_mid_stream_ends_the_upstream_connection(
    relay: Relay, upstream: StreamingUpstream
) -> None:
    reader, writer = await mid_stream(relay, upstream)
    writer.close()
    await soon(upstream.client_gone.wait())


async def test_closing_the_relay_drops_open_connections_and_refuses_new_ones(
    relay: Relay, upstream: StreamingUpstream
) -> None:
    reader, writer = await mid_stream(relay, upstream)
    await soon(relay.close())
    with contextlib.suppress(ConnectionError):  # a reset is as good as an end
        assert await soon(reader.read()) == b""
    await soon(upstream.client_gone.wait())
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", relay.port)
    writer.close()


async def test_a_client_of_an_upstream_that_is_not_listening_sees_its_connection_end() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    relay = await Relay.open("127.0.0.1", "127.0.0.1", port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(REQUEST)
        with contextlib.suppress(ConnectionError):
            assert await soon(reader.read()) == b""
        writer.close()
    finally:
        await relay.close()
