from __future__ import annotations

import threading

from live.nonces import NonceStore


def test_a_nonce_is_accepted_once_until_it_expires():
    store = NonceStore()
    assert store.claim("v", "n1", expires_at=10.0, now=0.0)
    assert not store.claim("v", "n1", expires_at=10.0, now=5.0)
    # Same nonce from another validator is a different request.
    assert store.claim("w", "n1", expires_at=10.0, now=5.0)
    assert store.claim("v", "n1", expires_at=20.0, now=10.0)


def test_expired_nonces_are_forgotten():
    store = NonceStore()
    for i in range(100):
        store.claim("v", f"n{i}", expires_at=float(i), now=0.0)
    store.claim("v", "late", expires_at=1000.0, now=50.0)
    assert len(store) == 50  # n50..n99 and "late"


def test_concurrent_claims_of_one_nonce_admit_exactly_one():
    store = NonceStore()
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def claim():
        barrier.wait()
        results.append(store.claim("v", "same", expires_at=100.0, now=0.0))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
