"""Stake-proportional rate limits for validator-to-miner traffic.

A miner serves ``capacity_rps`` requests per second in total. Each permitted validator may use a
share proportional to its stake. The validator keeps part of its own share in reserve for organic
traffic: synthetic challenges draw only from the shared part, organic requests draw from the
reserve first and then from the shared part, so synthetic load can never starve organic users.

Buckets are plain values and :func:`take` is a pure function; :class:`PairLimiter` applies it
under a lock so concurrent callers can never overdraw a bucket.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Literal

import msgspec

__all__ = [
    "Bucket",
    "PairLimiter",
    "RateShare",
    "TrafficKind",
    "TrafficLimiter",
    "stake_share",
    "take",
]

TrafficKind = Literal["synthetic", "organic"]


class Bucket(msgspec.Struct, frozen=True):
    """A token bucket: ``rate`` tokens per second, at most ``burst``, ``tokens`` at ``updated``."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> Bucket:
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)


def take(bucket: Bucket, now: float, cost: float = 1.0) -> tuple[Bucket, bool]:
    """Refill ``bucket`` up to ``now`` and take ``cost`` tokens if there are enough."""
    elapsed = max(0.0, now - bucket.updated)
    tokens = min(bucket.burst, bucket.tokens + elapsed * bucket.rate)
    updated = max(now, bucket.updated)
    if tokens >= cost:
        return Bucket(bucket.rate, bucket.burst, tokens - cost, updated), True
    return Bucket(bucket.rate, bucket.burst, tokens, updated), False


def _resized(bucket: Bucket, rate: float, burst: float) -> Bucket:
    # A stake change resizes the bucket without refunding or forgiving what was already spent.
    return Bucket(rate, burst, min(bucket.tokens, burst), bucket.updated)


class RateShare(msgspec.Struct, frozen=True):
    """One validator's allowance at one miner."""

    rate: float
    burst: float


def stake_share(
    stakes: Mapping[str, float], validator: str, *, capacity_rps: float, burst_s: float
) -> RateShare:
    """``validator``'s part of a miner's capacity, proportional to its stake among ``stakes``.

    ``stakes`` holds the permitted validators only; an unknown validator gets nothing. When no
    permitted validator has stake (a fresh local subnet), they share equally. The burst is
    ``burst_s`` seconds of the validator's rate.
    """
    if validator not in stakes:
        return RateShare(rate=0.0, burst=0.0)
    total = sum(max(0.0, s) for s in stakes.values())
    fraction = max(0.0, stakes[validator]) / total if total > 0 else 1.0 / len(stakes)
    rate = capacity_rps * fraction
    return RateShare(rate=rate, burst=rate * burst_s)


class PairLimiter:
    """Buckets keyed by ``(validator, miner)``; each :meth:`acquire` is atomic."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: tuple[str, str], share: RateShare, now: float) -> bool:
        with self._lock:
            bucket = self._buckets.get(key)
            bucket = (
                Bucket.full(share.rate, share.burst, now)
                if bucket is None
                else _resized(bucket, share.rate, share.burst)
            )
            self._buckets[key], ok = take(bucket, now)
            return ok


class TrafficLimiter:
    """A validator's own limiter: per miner, an organic reserve plus a shared bucket."""

    def __init__(self, organic_reserve: float) -> None:
        if not 0.0 <= organic_reserve <= 1.0:
            raise ValueError(f"organic_reserve must be within [0, 1], got {organic_reserve}")
        self.organic_reserve = organic_reserve
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, miner: str, kind: TrafficKind, share: RateShare, now: float) -> bool:
        reserve = RateShare(share.rate * self.organic_reserve, share.burst * self.organic_reserve)
        shared = RateShare(share.rate - reserve.rate, share.burst - reserve.burst)
        with self._lock:
            if kind == "organic" and self._take((miner, "reserve"), reserve, now):
                return True
            return self._take((miner, "shared"), shared, now)

    def _take(self, key: tuple[str, str], share: RateShare, now: float) -> bool:
        bucket = self._buckets.get(key)
        bucket = (
            Bucket.full(share.rate, share.burst, now)
            if bucket is None
            else _resized(bucket, share.rate, share.burst)
        )
        self._buckets[key], ok = take(bucket, now)
        return ok
