"""Sending one signed request to a miner. Never raises for a miner's fault: the result says."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import httpx
import msgspec
from substrateinterface import Keypair

from live.signing import sign_request

__all__ = ["ErrorKind", "QueryResult", "query_miner"]

ErrorKind = Literal["", "timeout", "connect", "http_status", "transport"]


class QueryResult(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    status: int
    latency_s: float
    body: bytes = b""
    error_kind: ErrorKind = ""
    error: str = ""


async def query_miner(
    client: httpx.AsyncClient,
    url: str,
    keypair: Keypair,
    miner_hotkey: str,
    body: bytes,
    *,
    timeout_s: float,
    clock: Callable[[], float] = time.time,
) -> QueryResult:
    """POST ``body`` to ``url`` signed for ``miner_hotkey``; latency covers the whole exchange."""
    signed = sign_request(keypair, miner=miner_hotkey, body=body, timestamp_ms=int(clock() * 1000))
    headers = {**signed.headers(), "content-type": "application/json"}
    start = time.perf_counter()
    try:
        response = await client.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        return _failed("timeout", f"no answer within {timeout_s}s: {exc!r}", start)
    except httpx.ConnectError as exc:
        return _failed("connect", f"could not connect to {url}: {exc}", start)
    except httpx.HTTPError as exc:
        return _failed("transport", f"request to {url} failed: {exc!r}", start)
    latency_s = time.perf_counter() - start
    if response.status_code != 200:
        return QueryResult(
            ok=False,
            status=response.status_code,
            latency_s=latency_s,
            body=response.content,
            error_kind="http_status",
            error=f"HTTP {response.status_code}: {response.text[:200]}",
        )
    return QueryResult(ok=True, status=200, latency_s=latency_s, body=response.content)


def _failed(kind: ErrorKind, error: str, start: float) -> QueryResult:
    return QueryResult(
        ok=False, status=0, latency_s=time.perf_counter() - start, error_kind=kind, error=error
    )
