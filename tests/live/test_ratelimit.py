from __future__ import annotations

import threading

import pytest

from live.ratelimit import Bucket, PairLimiter, RateShare, TrafficLimiter, stake_share, take


def test_take_refills_at_rate_and_caps_at_burst():
    bucket = Bucket.full(rate=2.0, burst=3.0, now=0.0)
    for _ in range(3):
        bucket, ok = take(bucket, 0.0)
        assert ok
    bucket, ok = take(bucket, 0.0)
    assert not ok
    bucket, ok = take(bucket, 0.5)  # one token back after half a second at 2/s
    assert ok
    bucket, _ = take(bucket, 100.0, cost=0.0)
    assert bucket.tokens == 3.0


def test_clock_going_backwards_grants_nothing():
    bucket, _ = take(Bucket(rate=1.0, burst=1.0, tokens=0.0, updated=10.0), 5.0, cost=0.0)
    assert bucket.tokens == 0.0 and bucket.updated == 10.0


def test_stake_share_is_proportional_and_unknown_gets_nothing():
    stakes = {"a": 3.0, "b": 1.0}
    assert stake_share(stakes, "a", capacity_rps=8, burst_s=2) == RateShare(6.0, 12.0)
    assert stake_share(stakes, "b", capacity_rps=8, burst_s=2) == RateShare(2.0, 4.0)
    assert stake_share(stakes, "c", capacity_rps=8, burst_s=2) == RateShare(0.0, 0.0)
    # Nobody staked yet (a fresh subnet): equal shares.
    assert stake_share({"a": 0, "b": 0}, "a", capacity_rps=8, burst_s=1) == RateShare(4.0, 4.0)


def test_pair_limiter_holds_under_concurrency():
    limiter = PairLimiter()
    stakes = {"big": 3.0, "small": 1.0}
    granted = {"big": 0, "small": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def hammer(validator: str):
        share = stake_share(stakes, validator, capacity_rps=0.0001, burst_s=40_000)
        barrier.wait()
        for _ in range(50):
            if limiter.acquire((validator, "miner"), share, now=0.0):
                with lock:
                    granted[validator] += 1

    threads = [threading.Thread(target=hammer, args=(v,)) for v in ["big", "small"] * 16]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Bursts are 3 and 1 requests (40,000 s of 0.000075 and 0.000025 rps), clock frozen.
    assert granted == {"big": 3, "small": 1}


def test_traffic_limiter_reserves_organic_share():
    limiter = TrafficLimiter(organic_reserve=0.25)
    share = RateShare(rate=0.0, burst=8.0)
    synthetic = sum(limiter.acquire("m", "synthetic", share, 0.0) for _ in range(20))
    assert synthetic == 6  # the shared 75%
    organic = sum(limiter.acquire("m", "organic", share, 0.0) for _ in range(20))
    assert organic == 2  # the reserve survived the synthetic flood


def test_organic_can_use_the_shared_part_too():
    limiter = TrafficLimiter(organic_reserve=0.25)
    share = RateShare(rate=0.0, burst=8.0)
    assert sum(limiter.acquire("m", "organic", share, 0.0) for _ in range(20)) == 8


def test_reserve_must_be_a_fraction():
    with pytest.raises(ValueError, match="organic_reserve"):
        TrafficLimiter(organic_reserve=1.5)


def test_traffic_limiter_holds_under_concurrency():
    limiter = TrafficLimiter(organic_reserve=0.5)
    share = RateShare(rate=0.0, burst=10.0)
    granted: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def hammer(kind):
        barrier.wait()
        for _ in range(20):
            if limiter.acquire("m", kind, share, now=0.0):
                with lock:
                    granted.append(kind)

    threads = [threading.Thread(target=hammer, args=(k,)) for k in ["synthetic", "organic"] * 8]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Never more than the share in total, and synthetic never beyond its half.
    assert len(granted) == 10
    assert granted.count("synthetic") <= 5 and granted.count("organic") >= 5
