"""Follow finalized heads through a websocket subscription that survives node restarts.

The follower yields block numbers. After a reconnect it yields the current finalized head at
once, so a consumer that scans ``last + 1 ..= head`` catches up on whatever it missed; it never
raises for a lost connection, it waits (with backoff) for the node to come back.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

from websocket import WebSocket, WebSocketException, WebSocketTimeoutException, create_connection

from chain.client import Backoff

__all__ = ["follow_finalized"]

log = logging.getLogger(__name__)


def _subscribe(url: str, timeout_s: float) -> tuple[WebSocket, int]:
    ws = create_connection(url, timeout=timeout_s)
    ws.send(
        json.dumps({"id": 1, "jsonrpc": "2.0", "method": "chain_getFinalizedHead", "params": []})
    )
    head_hash = json.loads(ws.recv())["result"]
    ws.send(
        json.dumps({"id": 2, "jsonrpc": "2.0", "method": "chain_getHeader", "params": [head_hash]})
    )
    head = int(json.loads(ws.recv())["result"]["number"], 16)
    ws.send(
        json.dumps(
            {"id": 3, "jsonrpc": "2.0", "method": "chain_subscribeFinalizedHeads", "params": []}
        )
    )
    return ws, head


def follow_finalized(
    url: str,
    stop: threading.Event,
    *,
    backoff: Backoff | None = None,
    poll_s: float = 1.0,
) -> Iterator[int]:
    """Yield finalized block numbers (non-decreasing, possibly skipping) until ``stop`` is set."""
    backoff = backoff or Backoff(initial=0.2, maximum=5.0)
    delays = backoff.delays()
    while not stop.is_set():
        try:
            ws, head = _subscribe(url, poll_s)
        except (OSError, WebSocketException, ValueError, KeyError) as exc:
            delay = next(delays, backoff.maximum)
            log.warning("following %s: cannot connect (%s), retrying in %.1fs", url, exc, delay)
            stop.wait(delay)
            continue
        delays = backoff.delays()
        try:
            yield head
            while not stop.is_set():
                try:
                    message = json.loads(ws.recv())
                except WebSocketTimeoutException:
                    continue  # no new block yet; recheck ``stop``
                header = message.get("params", {}).get("result")
                if header and "number" in header:
                    yield int(header["number"], 16)
        except (OSError, WebSocketException, ValueError) as exc:
            log.warning("following %s: connection lost (%s); reconnecting", url, exc)
            stop.wait(backoff.initial)
        finally:
            ws.close()
