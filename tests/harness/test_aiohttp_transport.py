"""The measuring client's transport against a real socket server: what arrives, what reuses a
connection, and which httpx error each broken server gives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from harness.loadgen import make_client, send_request
from harness.prompts import Prompt

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head, await reader.readexactly(length)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """A server on a free port that answers each connection with ``handler``."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_streams_chunks_and_reuses_the_connection():
    seen: list[tuple[bytes, bytes]] = []
    connections = 0

    async def handler(reader, writer):
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                seen.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"data: 1\n\n", b"data: 2\n\n"):
                writer.write(_chunk(part))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        writer.close()

    async with serve(handler) as url, make_client(1, 10) as client:
        bodies = []
        for n in range(2):
            async with client.stream("POST", url + "/v1/x", json={"n": n}) as response:
                assert response.status_code == 200
                bodies.append(b"".join([chunk async for chunk in response.aiter_raw()]))
    assert bodies == [b"data: 1\n\ndata: 2\n\n"] * 2
    assert [json.loads(body) for _, body in seen] == [{"n": 0}, {"n": 1}]
    assert all(head.startswith(b"POST /v1/x HTTP/1.1") for head, _ in seen)
    assert connections == 1  # keep-alive, as vLLM's clients use it


async def test_a_refused_connection_is_a_connect_error():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_client(1, 10) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize(
    "answer",
    [
        # the connection closes in the middle of a chunked body
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + _chunk(b"data: 1\n\n"),
        # not HTTP at all
        b"garbage\r\n\r\n",
        # the connection closes before any answer
        b"",
    ],
    ids=["cut_mid_body", "not_http", "closed"],
)
async def test_a_broken_answer_is_a_remote_protocol_error(answer: bytes):
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    async with serve(handler) as url, make_client(1, 10) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("GET", url) as response:
                async for _ in response.aiter_raw():
                    pass


@pytest.mark.parametrize(
    ("answer", "code"),
    [(b"", "transport"), (None, "timeout")],
    ids=["closed", "silent"],
)
async def test_the_load_generator_records_a_broken_server_and_carries_on(answer, code: str):
    async def handler(reader, writer):
        await _read_request(reader)
        if answer is None:
            await reader.read()  # silent until the client gives up
        else:
            writer.write(answer)
        writer.close()

    async with serve(handler) as url, make_client(1, 0.2) as client:
        result = await send_request(
            client, url, Prompt(0, "hi", 4), "m", request_timeout_s=0.2, stall_timeout_s=0.2
        )
    assert (result.success, result.error_code) == (False, code), result.error


async def test_silence_past_the_read_timeout_is_a_read_timeout():
    async def handler(reader, writer):
        await _read_request(reader)
        await reader.read()  # says nothing until the client gives up and closes
        writer.close()

    async with serve(handler) as url, make_client(1, 0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url)
