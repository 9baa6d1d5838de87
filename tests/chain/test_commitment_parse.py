"""The commitment payload grammar, with plain strings (no chain)."""

import pytest

from chain.commitment import (
    MAX_COMMITMENT_BYTES,
    CommitmentError,
    StoredCommitment,
    decode_fields,
    encode_fields,
    parse_image_ref,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("payload", "image"),
    [
        (f"ghcr.io/org/miner@{DIGEST}", "ghcr.io/org/miner"),
        (f"ghcr.io/org/miner:v1.2-rc_3@{DIGEST}", "ghcr.io/org/miner:v1.2-rc_3"),
        (f"127.0.0.1:5000/arena/miner:local@{DIGEST}", "127.0.0.1:5000/arena/miner:local"),
        (f"localhost/a__b/c-d/e.f@{DIGEST}", "localhost/a__b/c-d/e.f"),
        (f"[::1]:5000/miner@{DIGEST}", "[::1]:5000/miner"),
        (f"registry.example.com:443/a/b/c/d@{DIGEST}", "registry.example.com:443/a/b/c/d"),
    ],
)
def test_valid_references_parse_into_image_and_digest(payload: str, image: str) -> None:
    ref = parse_image_ref(payload)
    assert ref.image == image
    assert ref.digest == DIGEST
    assert str(ref) == payload


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "empty"),
        ("ghcr.io/org/miner:v1", "missing '@sha256"),
        (f"ghcr.io/org/miner@{DIGEST[:-1]}", "64 lowercase hex"),
        (f"ghcr.io/org/miner@{DIGEST.upper().replace('SHA256', 'sha256')}", "64 lowercase hex"),
        ("ghcr.io/m@sha512:" + "a" * 64, "algorithm must be sha256"),
        (f"org/miner@{DIGEST}", "must start with its registry host"),
        (f"miner@{DIGEST}", "must start with its registry host"),
        (f"ghcr.io/Org/miner@{DIGEST}", "path component 'Org'"),
        (f"ghcr.io/org//miner@{DIGEST}", "path component ''"),
        (f"ghcr.io/org/miner-@{DIGEST}", "path component 'miner-'"),
        (f"ghcr.io/org/miner:-bad@{DIGEST}", "tag '-bad'"),
        (f"ghcr.io/org/miner:@{DIGEST}", "tag ''"),
        (f"-ghcr.io/miner@{DIGEST}", "registry '-ghcr.io'"),
        (f"ghcr.io:port/miner@{DIGEST}", "registry 'ghcr.io:port'"),
        (f"ghcr.io/@{DIGEST}", "no repository path"),
        (f" ghcr.io/org/miner@{DIGEST}", "whitespace"),
        (f"ghcr.io/org/mi ner@{DIGEST}", "whitespace"),
        (f"ghcr.io/org@x/miner@{DIGEST}", "more than one '@'"),
    ],
)
def test_invalid_references_name_what_is_wrong(payload: str, reason: str) -> None:
    with pytest.raises(CommitmentError) as info:
        parse_image_ref(payload)
    assert reason in info.value.reason


def test_payload_over_128_bytes_is_refused_and_128_is_accepted() -> None:
    prefix = "ghcr.io/"
    room = MAX_COMMITMENT_BYTES - len(prefix) - len(DIGEST) - 1
    fits = f"{prefix}{'a' * room}@{DIGEST}"
    assert len(fits.encode()) == MAX_COMMITMENT_BYTES
    assert parse_image_ref(fits).path == "a" * room
    with pytest.raises(CommitmentError, match="129 bytes"):
        parse_image_ref(f"{prefix}{'a' * (room + 1)}@{DIGEST}")
    with pytest.raises(CommitmentError, match="at most 128"):
        encode_fields(b"x" * 129)


def test_fields_round_trip_as_one_raw_field() -> None:
    payload = f"ghcr.io/org/miner@{DIGEST}".encode()
    info = encode_fields(payload)
    assert list(info["fields"][0][0]) == [f"Raw{len(payload)}"]
    # The chain decodes the nested vector as a flat list of one-key dicts.
    assert decode_fields({"fields": info["fields"][0]}) == payload


def test_non_utf8_commitment_is_a_commitment_error() -> None:
    with pytest.raises(CommitmentError, match="UTF-8"):
        StoredCommitment(hotkey="x", block=1, raw=b"\xff\xfe").parse()
