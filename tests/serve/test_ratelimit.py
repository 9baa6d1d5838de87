"""Token buckets, driven by explicit clocks: no sleeping, no real time."""

from __future__ import annotations

import math

import pytest

from serve_apps.ratelimit import Bucket, RateLimiter, retry_after_header, take


def test_full_bucket_allows_burst_then_says_how_long_to_wait() -> None:
    bucket = Bucket(rate_per_s=2.0, burst=3, tokens=3, updated=0.0)
    waits = []
    for _ in range(4):
        bucket, wait = take(bucket, now=0.0)
        waits.append(wait)
    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.5)]


def test_tokens_refill_at_rate_and_cap_at_burst() -> None:
    empty = Bucket(rate_per_s=2.0, burst=3, tokens=0.0, updated=0.0)
    bucket, wait = take(empty, now=0.25)
    assert wait == pytest.approx(0.25)  # half a token there, half still missing
    bucket, wait = take(bucket, now=0.5)
    assert wait == 0.0 and bucket.tokens == pytest.approx(0.0)
    bucket, _ = take(bucket, now=100.0)
    assert bucket.tokens == pytest.approx(2.0)  # capped at burst 3, minus the one just taken


def test_clock_going_backwards_does_not_mint_tokens() -> None:
    bucket = Bucket(rate_per_s=1.0, burst=1, tokens=0.0, updated=10.0)
    _, wait = take(bucket, now=5.0)
    assert wait == pytest.approx(1.0)


def test_limiter_keeps_keys_apart_and_resets_when_limits_change() -> None:
    limiter = RateLimiter()
    assert limiter.check("a", 1.0, 1, now=0.0) == 0.0
    assert limiter.check("a", 1.0, 1, now=0.0) == pytest.approx(1.0)
    assert limiter.check("b", 1.0, 1, now=0.0) == 0.0
    # The operator raised a's burst: its bucket starts full with the new limits.
    assert limiter.check("a", 1.0, 5, now=0.0) == 0.0


@pytest.mark.parametrize(
    ("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60"), (math.inf, "3600")]
)
def test_retry_after_rounds_up_to_whole_seconds(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header
