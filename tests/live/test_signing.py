"""The signed payload binds every field, and only the validator's key verifies it."""

from __future__ import annotations

import pytest
from substrateinterface import Keypair

from live.signing import (
    BadSignedHeaders,
    parse_headers,
    sign_request,
    signing_payload,
    verify_signature,
)

VALIDATOR = Keypair.create_from_uri("//LiveValidator")
MINER = Keypair.create_from_uri("//LiveMiner").ss58_address
OTHER_MINER = Keypair.create_from_uri("//OtherMiner").ss58_address
BODY = b'{"op":"add","a":1,"b":2}'


def test_signed_headers_round_trip_and_verify():
    signed = sign_request(VALIDATOR, miner=MINER, body=BODY, timestamp_ms=1_000)
    parsed = parse_headers(signed.headers())
    assert parsed == signed
    assert verify_signature(parsed, BODY)


def test_payload_binds_each_field():
    base = dict(nonce="a" * 32, validator=VALIDATOR.ss58_address, miner=MINER, body_hash="0" * 64)
    payload = signing_payload(**base, timestamp_ms=1)
    assert payload != signing_payload(**base, timestamp_ms=2)
    for field, other in [("nonce", "b" * 32), ("miner", OTHER_MINER), ("body_hash", "1" * 64)]:
        assert payload != signing_payload(**{**base, field: other}, timestamp_ms=1)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: (s.__class__(**{**_fields(s), "timestamp_ms": s.timestamp_ms + 1}), BODY),
        lambda s: (s.__class__(**{**_fields(s), "nonce": "f" * 32}), BODY),
        lambda s: (s.__class__(**{**_fields(s), "miner": OTHER_MINER}), BODY),
        lambda s: (s, BODY.replace(b"1", b"7")),
        lambda s: (s.__class__(**{**_fields(s), "signature": bytes(64)}), BODY),
    ],
    ids=["timestamp", "nonce", "miner", "body", "signature"],
)
def test_any_change_breaks_the_signature(tamper):
    signed, body = tamper(sign_request(VALIDATOR, miner=MINER, body=BODY, timestamp_ms=5))
    assert not verify_signature(signed, body)


def test_a_different_key_cannot_sign_for_the_validator():
    forger = Keypair.create_from_uri("//Forger")
    forged = sign_request(forger, miner=MINER, body=BODY, timestamp_ms=5)
    claimed = forged.__class__(**{**_fields(forged), "validator": VALIDATOR.ss58_address})
    assert not verify_signature(claimed, BODY)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x-arena-nonce": None}, "missing"),
        ({"x-arena-nonce": "A" * 32}, "nonce"),
        ({"x-arena-timestamp-ms": "soon"}, "timestamp"),
        ({"x-arena-signature": "00"}, "signature"),
        ({"x-arena-validator": "alice\nbob"}, "ss58"),
    ],
)
def test_malformed_headers_are_named(change, message):
    headers = sign_request(VALIDATOR, miner=MINER, body=BODY, timestamp_ms=5).headers()
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(BadSignedHeaders, match=message):
        parse_headers(headers)


def _fields(signed):
    return {f: getattr(signed, f) for f in signed.__struct_fields__}
