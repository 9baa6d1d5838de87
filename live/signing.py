"""What a validator signs for each request to a miner, and how a miner checks it.

The signature is sr25519 by the validator's hotkey over one canonical byte string built from the
nonce, both hotkeys, the sha256 of the exact body bytes and the timestamp. Binding the miner's
hotkey stops a request sent to one miner from being replayed to another; binding the body hash
makes any change to the body break the signature; nonce and timestamp make replays detectable.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets

import msgspec
from substrateinterface import Keypair

from live.errors import LiveError

__all__ = [
    "HEADER_MINER",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "HEADER_VALIDATOR",
    "BadSignedHeaders",
    "SignedRequest",
    "body_sha256",
    "parse_headers",
    "sign_request",
    "signing_payload",
    "verify_signature",
]

HEADER_VALIDATOR = "x-arena-validator"
HEADER_MINER = "x-arena-miner"
HEADER_NONCE = "x-arena-nonce"
HEADER_TIMESTAMP = "x-arena-timestamp-ms"
HEADER_SIGNATURE = "x-arena-signature"

_DOMAIN = b"arena-live/v1"
# Fixed shapes keep the newline-joined payload unambiguous: no field can contain a separator.
_NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
_HOTKEY_RE = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{46,48}$")
_SIGNATURE_RE = re.compile(r"^(0x)?[0-9a-f]{128}$")


class BadSignedHeaders(LiveError, ValueError):
    """The request's authentication headers are missing or malformed."""


class SignedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The signed fields of one request, as carried in its headers."""

    validator: str
    miner: str
    nonce: str
    timestamp_ms: int
    signature: bytes

    def headers(self) -> dict[str, str]:
        return {
            HEADER_VALIDATOR: self.validator,
            HEADER_MINER: self.miner,
            HEADER_NONCE: self.nonce,
            HEADER_TIMESTAMP: str(self.timestamp_ms),
            HEADER_SIGNATURE: self.signature.hex(),
        }


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def signing_payload(
    *, nonce: str, validator: str, miner: str, body_hash: str, timestamp_ms: int
) -> bytes:
    return b"\n".join(
        [
            _DOMAIN,
            nonce.encode(),
            validator.encode(),
            miner.encode(),
            body_hash.encode(),
            str(timestamp_ms).encode(),
        ]
    )


def sign_request(keypair: Keypair, *, miner: str, body: bytes, timestamp_ms: int) -> SignedRequest:
    """Sign ``body`` for ``miner`` with the validator's hotkey, using a fresh random nonce."""
    nonce = secrets.token_hex(16)
    payload = signing_payload(
        nonce=nonce,
        validator=keypair.ss58_address,
        miner=miner,
        body_hash=body_sha256(body),
        timestamp_ms=timestamp_ms,
    )
    return SignedRequest(
        validator=keypair.ss58_address,
        miner=miner,
        nonce=nonce,
        timestamp_ms=timestamp_ms,
        signature=keypair.sign(payload),
    )


def parse_headers(headers: dict[str, str]) -> SignedRequest:
    """Read the signed fields from lower-cased headers; raises :class:`BadSignedHeaders`."""
    required = (HEADER_VALIDATOR, HEADER_MINER, HEADER_NONCE, HEADER_TIMESTAMP, HEADER_SIGNATURE)
    missing = [name for name in required if name not in headers]
    if missing:
        raise BadSignedHeaders(f"missing authentication headers: {', '.join(missing)}")
    validator, miner = headers[HEADER_VALIDATOR], headers[HEADER_MINER]
    nonce, signature = headers[HEADER_NONCE], headers[HEADER_SIGNATURE]
    if not (_HOTKEY_RE.match(validator) and _HOTKEY_RE.match(miner)):
        raise BadSignedHeaders("validator and miner headers must be ss58 hotkeys")
    if not _NONCE_RE.match(nonce):
        raise BadSignedHeaders("nonce must be 32 lower-case hex characters")
    if not _SIGNATURE_RE.match(signature):
        raise BadSignedHeaders("signature must be 64 bytes of lower-case hex")
    try:
        timestamp_ms = int(headers[HEADER_TIMESTAMP])
    except ValueError:
        raise BadSignedHeaders("timestamp must be an integer of unix milliseconds") from None
    return SignedRequest(
        validator=validator,
        miner=miner,
        nonce=nonce,
        timestamp_ms=timestamp_ms,
        signature=bytes.fromhex(signature.removeprefix("0x")),
    )


@functools.lru_cache(maxsize=4096)
def _public_keypair(ss58_address: str) -> Keypair:
    return Keypair(ss58_address=ss58_address)


def verify_signature(signed: SignedRequest, body: bytes) -> bool:
    """Whether ``signed.signature`` is the validator's signature over these fields and body."""
    payload = signing_payload(
        nonce=signed.nonce,
        validator=signed.validator,
        miner=signed.miner,
        body_hash=body_sha256(body),
        timestamp_ms=signed.timestamp_ms,
    )
    try:
        return bool(_public_keypair(signed.validator).verify(payload, signed.signature))
    except ValueError:
        # Not a decodable ss58 address: it cannot have signed anything.
        return False
