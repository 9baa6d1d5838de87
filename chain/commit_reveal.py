"""Commit-reveal of weights as the spec 218 runtime has it: commit a hash, reveal one epoch on.

A validator commits ``blake2_256(SCALE(hotkey, netuid, uids, values, salt, version_key))`` with
``commit_weights`` and reveals the same values and salt with ``reveal_weights`` in exactly the
epoch ``reveal_period`` epochs after the commit's; a commit not revealed by then expires. The
commit moves the validator's ``LastUpdate`` and is what the rate limit counts; the reveal is
what sets ``Weights``. Spec 218 has no timelocked (drand, "v3") commits.

The pure functions mirror the pallet's arithmetic; the others read and write the chain.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from substrateinterface import Keypair

from chain.client import ChainClient, ExtrinsicResult

__all__ = [
    "SALT_LENGTH",
    "WeightsCommit",
    "commit_hash",
    "commit_weights",
    "epoch_index",
    "new_salt",
    "read_pending_commits",
    "reveal_weights",
    "reveal_window",
]

SALT_LENGTH = 8


@dataclass(frozen=True)
class WeightsCommit:
    """What a reveal needs: the committed u16 weights, their salt and version key."""

    uids: list[int]
    weights: list[int]
    salt: list[int]
    version_key: int


def _compact(n: int) -> bytes:
    """SCALE compact encoding of a length (enough for any vector a subnet holds)."""
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    if n < 1 << 30:
        return ((n << 2) | 2).to_bytes(4, "little")
    raise ValueError(f"vector of {n} items is too long to commit")


def _u16_vec(values: Sequence[int]) -> bytes:
    return _compact(len(values)) + b"".join(v.to_bytes(2, "little") for v in values)


def commit_hash(hotkey: bytes, netuid: int, commit: WeightsCommit) -> str:
    """The ``0x``-hex hash the runtime recomputes from a reveal by ``hotkey`` (its public key)."""
    data = (
        hotkey
        + netuid.to_bytes(2, "little")
        + _u16_vec(commit.uids)
        + _u16_vec(commit.weights)
        + _u16_vec(commit.salt)
        + commit.version_key.to_bytes(8, "little")
    )
    return "0x" + hashlib.blake2b(data, digest_size=32).hexdigest()


def new_salt() -> list[int]:
    return [secrets.randbelow(1 << 16) for _ in range(SALT_LENGTH)]


def epoch_index(netuid: int, tempo: int, block: int) -> int:
    """The subnet's epoch number at ``block`` (the pallet's ``get_epoch_index``)."""
    return (block + netuid + 1) // (tempo + 1)


def reveal_window(netuid: int, tempo: int, reveal_period: int, commit_block: int) -> range:
    """The blocks in which a commit made at ``commit_block`` may be revealed."""
    epoch = epoch_index(netuid, tempo, commit_block) + reveal_period
    first = epoch * (tempo + 1) - (netuid + 1)
    return range(first, first + tempo + 1)


def read_pending_commits(client: ChainClient, netuid: int, hotkey: str) -> list[str]:
    """Hashes of ``hotkey``'s commits the chain still holds (not revealed, maybe expired)."""
    commits = client.query("SubtensorModule", "WeightCommits", [netuid, hotkey]) or []
    return [entry[0] for entry in commits]


def commit_weights(
    client: ChainClient, hotkey: Keypair, netuid: int, commit: WeightsCommit
) -> tuple[str, ExtrinsicResult]:
    """Commit the hash of ``commit``; returns the hash and where it landed."""
    digest = commit_hash(hotkey.public_key, netuid, commit)
    call = client.compose_call(
        "SubtensorModule", "commit_weights", {"netuid": netuid, "commit_hash": digest}
    )
    return digest, client.submit(call, hotkey)


def reveal_weights(
    client: ChainClient, hotkey: Keypair, netuid: int, commit: WeightsCommit
) -> ExtrinsicResult:
    call = client.compose_call(
        "SubtensorModule",
        "reveal_weights",
        {
            "netuid": netuid,
            "uids": commit.uids,
            "values": commit.weights,
            "salt": commit.salt,
            "version_key": commit.version_key,
        },
    )
    return client.submit(call, hotkey)
