"""Miner submissions on chain: ``<image>@sha256:<64 hex>`` in ``Commitments.CommitmentOf``.

The payload is a submission reference (:func:`rules.image_ref.parse_submission_ref`, the one
grammar the sandbox pulls by too). Raw fields hold at most 128 bytes, so longer payloads are
refused before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from substrateinterface import Keypair

from chain.client import ChainClient, ExtrinsicResult
from rules.image_ref import (
    MAX_SUBMISSION_BYTES,
    ImageRef,
    ImageRefError,
    parse_submission_ref,
)

__all__ = [
    "StoredCommitment",
    "commit_image",
    "decode_fields",
    "encode_fields",
    "read_commitment",
    "read_commitments",
]


def encode_fields(payload: bytes) -> dict:
    """The ``CommitmentInfo`` argument holding ``payload`` as one ``RawN`` field."""
    if len(payload) > MAX_SUBMISSION_BYTES:
        raise ImageRefError(
            f"commitment is {len(payload)} bytes, the chain holds at most {MAX_SUBMISSION_BYTES}"
        )
    return {"fields": [[{f"Raw{len(payload)}": "0x" + payload.hex()}]]}


def decode_fields(info: dict) -> bytes:
    """The bytes of the ``Raw`` fields of a decoded ``CommitmentInfo``, concatenated."""
    out = b""
    for field in info.get("fields", []):
        # Decoded as a one-key dict {"RawN": "0x.."}, or a bare "None"/{"None": None}.
        items = field.items() if isinstance(field, dict) else []
        for kind, value in items:
            if kind.startswith("Raw") and isinstance(value, str):
                out += bytes.fromhex(value.removeprefix("0x"))
            elif kind.startswith("Raw") and isinstance(value, bytes | list):
                out += bytes(value)
    return out


@dataclass(frozen=True)
class StoredCommitment:
    """What a hotkey has on chain: the raw payload and the block it was set in."""

    hotkey: str
    block: int
    raw: bytes

    def parse(self) -> ImageRef:
        try:
            text = self.raw.decode()
        except UnicodeDecodeError:
            raise ImageRefError("commitment is not UTF-8 text") from None
        return parse_submission_ref(text)


def commit_image(
    client: ChainClient, hotkey: Keypair, netuid: int, ref: ImageRef | str
) -> ExtrinsicResult:
    """Validate then ``Commitments.set_commitment``; the result names the block it landed in."""
    ref = parse_submission_ref(ref) if isinstance(ref, str) else ref
    call = client.compose_call(
        "Commitments",
        "set_commitment",
        {"netuid": netuid, "info": encode_fields(str(ref).encode())},
    )
    return client.submit(call, hotkey)


def _stored(hotkey: str, value: dict) -> StoredCommitment:
    return StoredCommitment(
        hotkey=hotkey, block=int(value["block"]), raw=decode_fields(value["info"])
    )


def read_commitment(
    client: ChainClient, netuid: int, hotkey: str, block_hash: str | None = None
) -> StoredCommitment | None:
    value = client.query("Commitments", "CommitmentOf", [netuid, hotkey], block_hash=block_hash)
    return _stored(hotkey, value) if value else None


def read_commitments(
    client: ChainClient, netuid: int, block_hash: str | None = None
) -> list[StoredCommitment]:
    """Every commitment on ``netuid``, oldest block first."""
    pairs = client.query_map("Commitments", "CommitmentOf", [netuid], block_hash=block_hash)
    return sorted((_stored(k, v) for k, v in pairs), key=lambda c: (c.block, c.hotkey))
