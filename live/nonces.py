"""Nonces a miner has already accepted, kept only as long as their timestamps stay fresh.

A request older than the freshness window is refused as stale before its nonce is consulted, so
a nonce needs remembering only until its request would be stale anyway; memory stays bounded by
the request rate times the window.
"""

from __future__ import annotations

import heapq
import threading

__all__ = ["NonceStore"]


class NonceStore:
    """Thread-safe set of ``(validator, nonce)`` pairs, each forgotten after its expiry."""

    def __init__(self) -> None:
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def claim(self, validator: str, nonce: str, *, expires_at: float, now: float) -> bool:
        """Record the nonce and return True, or return False if it was already claimed.

        Check and insert happen under one lock, so two concurrent copies of a request cannot
        both be accepted.
        """
        key = (validator, nonce)
        with self._lock:
            self._forget_expired(now)
            if key in self._expiry:
                return False
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True

    def _forget_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            self._expiry.pop(key, None)
