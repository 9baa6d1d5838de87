"""Per-key token buckets: a request spends one token; tokens refill at ``rate_per_s`` up to
``burst``. The decision is a pure function of (bucket, now); :class:`RateLimiter` only keeps one
bucket per key.
"""

from __future__ import annotations

import math

import msgspec

__all__ = ["Bucket", "RateLimiter", "retry_after_header", "take"]


class Bucket(msgspec.Struct, frozen=True):
    rate_per_s: float
    burst: float
    tokens: float
    updated: float


def take(bucket: Bucket, now: float, cost: float = 1.0) -> tuple[Bucket, float]:
    """Spend ``cost`` tokens at ``now``: the new bucket and 0.0, or the unchanged-but-refilled
    bucket and the seconds until ``cost`` tokens will be there."""
    elapsed = max(0.0, now - bucket.updated)
    tokens = min(bucket.burst, bucket.tokens + elapsed * bucket.rate_per_s)
    if tokens >= cost:
        return Bucket(bucket.rate_per_s, bucket.burst, tokens - cost, now), 0.0
    wait = (cost - tokens) / bucket.rate_per_s if bucket.rate_per_s > 0 else math.inf
    return Bucket(bucket.rate_per_s, bucket.burst, tokens, now), wait


def retry_after_header(wait_s: float) -> str:
    """HTTP ``Retry-After`` takes whole seconds; round up so a client that obeys it succeeds."""
    return str(max(1, math.ceil(wait_s))) if math.isfinite(wait_s) else "3600"


class RateLimiter:
    """One bucket per API key, created full on first use with that key's limits."""

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}

    def check(self, key_id: str, rate_per_s: float, burst: float, now: float) -> float:
        """0.0 when the request may go ahead, else the seconds to wait."""
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate_per_s != rate_per_s or bucket.burst != burst:
            # New key, or its limits changed in the key store: start from a full bucket.
            bucket = Bucket(rate_per_s, burst, burst, now)
        self._buckets[key_id], wait = take(bucket, now)
        return wait
