"""Miner submissions on chain: ``<image>@sha256:<64 hex>`` in ``Commitments.CommitmentOf``.

The payload is parsed strictly against the OCI distribution reference grammar
(``host[:port]/path[:tag]@sha256:<hex>``); the registry host is required so the validator pulls
exactly what the miner named, never a registry-dependent short name. Raw fields hold at most
128 bytes, so longer payloads are refused before anything is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from substrateinterface import Keypair

from chain.client import ChainClient, ExtrinsicResult

__all__ = [
    "MAX_COMMITMENT_BYTES",
    "CommitmentError",
    "ImageRef",
    "StoredCommitment",
    "commit_image",
    "decode_fields",
    "encode_fields",
    "parse_image_ref",
    "read_commitment",
    "read_commitments",
]

MAX_COMMITMENT_BYTES = 128
_MAX_NAME_LEN = 255

# Grammar from the distribution/reference package (the OCI reference implementation).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])"
_DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[_.]|__|[-]+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


class CommitmentError(ValueError):
    """A payload is not a valid ``image@sha256:<hex>`` commitment; ``reason`` says which part."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageRef:
    """``image`` is ``registry/path[:tag]``, ``digest`` is ``sha256:<64 hex>``."""

    registry: str
    path: str
    tag: str | None
    digest: str

    @property
    def image(self) -> str:
        name = f"{self.registry}/{self.path}"
        return f"{name}:{self.tag}" if self.tag else name

    def __str__(self) -> str:
        return f"{self.image}@{self.digest}"


def _looks_like_registry(component: str) -> bool:
    # Docker's rule: the first component names a registry iff it has a dot or port, or is localhost.
    return "." in component or ":" in component or component == "localhost" or "[" in component


def parse_image_ref(payload: str) -> ImageRef:
    """Parse ``registry[:port]/path[:tag]@sha256:<64 hex>``; raises :class:`CommitmentError`."""
    if not payload:
        raise CommitmentError("empty commitment")
    if payload != payload.strip() or any(c.isspace() for c in payload):
        raise CommitmentError("commitment contains whitespace")
    size = len(payload.encode())
    if size > MAX_COMMITMENT_BYTES:
        raise CommitmentError(
            f"commitment is {size} bytes, the chain holds at most {MAX_COMMITMENT_BYTES}; "
            "use a shorter registry path or drop the tag"
        )
    name_and_tag, at, digest = payload.rpartition("@")
    if not at:
        raise CommitmentError("missing '@sha256:<64 hex>' digest: images are pulled by digest only")
    if not _DIGEST_RE.fullmatch(digest):
        algorithm = digest.partition(":")[0]
        if algorithm != "sha256":
            raise CommitmentError(f"digest algorithm must be sha256, got {algorithm!r}")
        raise CommitmentError(
            f"digest must be sha256 followed by 64 lowercase hex characters, got {digest!r}"
        )
    if "@" in name_and_tag:
        raise CommitmentError("more than one '@' in commitment")
    registry, slash, remainder = name_and_tag.partition("/")
    if not slash or not _looks_like_registry(registry):
        raise CommitmentError(
            f"image {name_and_tag!r} must start with its registry host "
            "(e.g. ghcr.io/org/miner or 127.0.0.1:5000/miner)"
        )
    if not _DOMAIN_RE.fullmatch(registry):
        raise CommitmentError(f"registry {registry!r} is not a valid host[:port]")
    # A tag follows the last ':' of the path part only (a ':' in the registry is its port).
    path, colon, tag = remainder.rpartition(":") if ":" in remainder else (remainder, "", "")
    if colon and not _TAG_RE.fullmatch(tag):
        raise CommitmentError(
            f"tag {tag!r} is invalid: it must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        )
    if not path:
        raise CommitmentError("image has no repository path after the registry")
    for component in path.split("/"):
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise CommitmentError(
                f"repository path component {component!r} is invalid: lowercase letters and "
                "digits, separated by '.', '_', '__' or '-'"
            )
    if len(f"{registry}/{path}") > _MAX_NAME_LEN:
        raise CommitmentError(f"image name longer than {_MAX_NAME_LEN} characters")
    return ImageRef(registry=registry, path=path, tag=tag or None, digest=digest)


def encode_fields(payload: bytes) -> dict:
    """The ``CommitmentInfo`` argument holding ``payload`` as one ``RawN`` field."""
    if len(payload) > MAX_COMMITMENT_BYTES:
        raise CommitmentError(
            f"commitment is {len(payload)} bytes, the chain holds at most {MAX_COMMITMENT_BYTES}"
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
            raise CommitmentError("commitment is not UTF-8 text") from None
        return parse_image_ref(text)


def commit_image(
    client: ChainClient, hotkey: Keypair, netuid: int, ref: ImageRef | str
) -> ExtrinsicResult:
    """Validate then ``Commitments.set_commitment``; the result names the block it landed in."""
    ref = parse_image_ref(ref) if isinstance(ref, str) else ref
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
