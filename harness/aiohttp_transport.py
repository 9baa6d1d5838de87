"""An httpx transport that sends requests through aiohttp.

The load generator keeps httpx's API but reads streams with aiohttp's C HTTP parser. Served the
way vLLM serves (keep-alive, one HTTP chunk per SSE event), httpx's own pure-Python stack costs
about 30 µs per event, which on a loaded core delays token timestamps and caps the token rate one
client can take in below ``vllm bench serve``'s (an aiohttp client); aiohttp hands over whatever
has arrived in one piece. ``bench/harness_fidelity.py`` measures both effects.

aiohttp's errors come back as the httpx errors that mean the same thing, so callers catch only
``httpx.HTTPError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]

# First match wins, so subclasses come before their bases.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.TimeoutException),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # an unparseable response
    (aiohttp.ClientError, httpx.NetworkError),
)


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientError as exc:
        wanted = next(target for source, target in _ERRORS if isinstance(exc, source))
        raise wanted(f"{type(exc).__name__}: {exc}", request=request) from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for data in self._response.content.iter_any():
                yield data

    async def aclose(self) -> None:
        # Back to the pool when the body was read to the end, otherwise the connection closes.
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over one aiohttp session with at most ``max_connections`` open connections."""

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:  # made here: a session belongs to the running event loop
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            # Decoding is httpx's job (Response.aiter_bytes); aiohttp hands bytes over as sent.
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        timeout = request.extensions.get("timeout", {})
        with _as_httpx_errors(request):
            response = await self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=await request.aread(),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
