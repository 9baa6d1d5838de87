"""The commitment payload's chain encoding, with plain bytes (no chain; the grammar is tested in
tests/rules/test_image_ref.py)."""

import pytest

from chain.commitment import StoredCommitment, decode_fields, encode_fields
from rules.image_ref import ImageRefError

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_encoding_more_than_128_bytes_is_refused() -> None:
    with pytest.raises(ImageRefError, match="at most 128"):
        encode_fields(b"x" * 129)


def test_fields_round_trip_as_one_raw_field() -> None:
    payload = f"ghcr.io/org/miner@{DIGEST}".encode()
    info = encode_fields(payload)
    assert list(info["fields"][0][0]) == [f"Raw{len(payload)}"]
    # The chain decodes the nested vector as a flat list of one-key dicts.
    assert decode_fields({"fields": info["fields"][0]}) == payload


def test_non_utf8_commitment_is_a_commitment_error() -> None:
    with pytest.raises(ImageRefError, match="UTF-8"):
        StoredCommitment(hotkey="x", block=1, raw=b"\xff\xfe").parse()
