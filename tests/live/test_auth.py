"""The miner's gate, decided on signed requests with a frozen clock (no network)."""

from __future__ import annotations

import pytest
from substrateinterface import Keypair

from live.auth import Authenticator, AuthPolicy, Refusal
from live.signing import sign_request

VALIDATOR = Keypair.create_from_uri("//GateValidator")
POOR = Keypair.create_from_uri("//GatePoor")
STRANGER = Keypair.create_from_uri("//GateStranger")
MINER = Keypair.create_from_uri("//GateMiner").ss58_address
BODY = b'{"op":"add","a":1,"b":2}'
NOW = 1_700_000_000.0
POLICY = AuthPolicy(max_age_s=30, max_future_s=5, min_stake=10, capacity_rps=1e-6, burst_s=3e6)


@pytest.fixture
def auth():
    stakes = {VALIDATOR.ss58_address: 100.0, POOR.ss58_address: 1.0}
    return Authenticator(MINER, POLICY, lambda: stakes, clock=lambda: NOW)


def signed(keypair=VALIDATOR, *, body=BODY, at=NOW, miner=MINER):
    return sign_request(keypair, miner=miner, body=body, timestamp_ms=int(at * 1000)).headers()


def reason(auth, headers, body=BODY):
    refused = auth.check(headers, body)
    return None if refused is None else refused.reason


def test_a_good_request_passes(auth):
    assert auth.check(signed(), BODY) is None


def test_replayed_nonce_is_refused(auth):
    headers = signed()
    assert reason(auth, headers) is None
    assert reason(auth, headers) is Refusal.REPLAY


def test_tampered_body_is_refused(auth):
    assert reason(auth, signed(), BODY.replace(b"2", b"3")) is Refusal.BAD_SIGNATURE


def test_forged_signature_is_refused(auth):
    headers = signed(STRANGER)
    headers["x-arena-validator"] = VALIDATOR.ss58_address  # claims a staked identity
    assert reason(auth, headers) is Refusal.BAD_SIGNATURE


def test_forged_request_does_not_burn_the_nonce(auth):
    good = signed()
    forged = {**good, "x-arena-signature": "00" * 64}
    assert reason(auth, forged) is Refusal.BAD_SIGNATURE
    assert reason(auth, good) is None


def test_unregistered_and_low_stake_callers_are_refused(auth):
    assert reason(auth, signed(STRANGER)) is Refusal.UNKNOWN_CALLER
    assert reason(auth, signed(POOR)) is Refusal.LOW_STAKE


def test_stale_and_future_timestamps_are_refused(auth):
    assert reason(auth, signed(at=NOW - 31)) is Refusal.STALE
    assert reason(auth, signed(at=NOW + 6)) is Refusal.FUTURE
    assert reason(auth, signed(at=NOW - 29)) is None
    assert reason(auth, signed(at=NOW + 4)) is None


def test_request_for_another_miner_is_refused(auth):
    other = Keypair.create_from_uri("//GateOtherMiner").ss58_address
    assert reason(auth, signed(miner=other)) is Refusal.WRONG_MINER


def test_missing_headers_are_refused(auth):
    assert reason(auth, {}) is Refusal.BAD_HEADERS


def test_stake_share_limits_each_caller(auth):
    # The only eligible caller owns the whole burst of 3 requests (3e6 s at 1e-6 rps).
    results = [reason(auth, signed()) for _ in range(5)]
    assert results == [None, None, None, Refusal.RATE_LIMITED, Refusal.RATE_LIMITED]
    assert Refusal.RATE_LIMITED.status == 429
