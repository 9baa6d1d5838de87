"""Event types: encoding round trips, loud rejection of unknown types and versions, stable keys."""

from __future__ import annotations

import msgspec
import pytest

from events.recorded import Recorded, decode_recorded, encode_recorded
from events.types import (
    EvalFinished,
    Event,
    EventDecodeError,
    KingCrowned,
    MinerRegistered,
    OrganicWindow,
    SubmissionCommitted,
    WeightsSet,
    decode,
    decode_msgpack,
    encode,
    encode_msgpack,
    event_types,
)
from tests.events.samples import one_of_each


def test_every_event_type_has_its_own_tag_and_key() -> None:
    # Covers types other areas append too: a missing key would make appends fail at runtime.
    types = event_types()
    tags = [cls.__struct_config__.tag for cls in types]
    assert len(set(tags)) == len(tags)
    missing_key = [cls.__name__ for cls in types if cls.key is Event.key]
    assert missing_key == []


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: type(e).__name__)
def test_json_round_trip(event) -> None:
    data = encode(event)
    assert msgspec.json.decode(data)["type"] == type(event).__name__
    assert decode(data) == event


def test_msgpack_round_trip_of_a_mixed_batch() -> None:
    batch = one_of_each()
    assert decode_msgpack(encode_msgpack(batch)) == batch


def test_recorded_round_trip_keeps_seq_ts_and_event() -> None:
    from datetime import UTC, datetime

    records = [
        Recorded(i + 1, datetime(2026, 11, 22, 10, i, tzinfo=UTC), e)
        for i, e in enumerate(one_of_each())
    ]
    assert decode_recorded(encode_recorded(records)) == records


def test_unknown_type_is_rejected_with_its_name() -> None:
    with pytest.raises(EventDecodeError, match="not a known event.*MinerExploded"):
        decode(b'{"type": "MinerExploded", "v": 1}')


def test_newer_version_is_rejected_not_guessed() -> None:
    data = msgspec.json.decode(encode(one_of_each()[0]))
    data["v"] = 99
    with pytest.raises(EventDecodeError, match="v99 is newer.*upgrade arena"):
        decode(msgspec.json.encode(data))
    with pytest.raises(EventDecodeError, match="v99 is newer"):
        decode_msgpack(msgspec.msgpack.encode([data]))


def test_missing_field_is_rejected_with_its_path() -> None:
    with pytest.raises(EventDecodeError, match="hotkey"):
        decode(b'{"type": "SubmissionCommitted", "netuid": 1, "uid": 2, "block": 3}')


def test_malformed_bytes_are_rejected() -> None:
    with pytest.raises(EventDecodeError, match="malformed"):
        decode(b"{not json")
    with pytest.raises(EventDecodeError):
        decode_recorded(b"\xc1garbage")


@pytest.mark.parametrize(
    ("event", "key"),
    [
        (
            MinerRegistered(netuid=7, uid=3, hotkey="5Hk", coldkey="5Ck", block=100),
            "7/3/5Hk@100",
        ),
        (
            SubmissionCommitted(
                netuid=7, uid=3, hotkey="5Hk", block=101, image="r/m", digest="sha256:ab"
            ),
            "5Hk@101",
        ),
        (
            EvalFinished(
                eval_id="ev-1",
                hotkey="5Hk",
                digest="sha256:ab",
                verdict="pass",
                reason="",
                score=0.2,
                noise=0.01,
                metrics={},
            ),
            "ev-1",
        ),
        (
            KingCrowned(
                hotkey="5Hk", digest="sha256:ab", image="r/m", score=0.2, block=9, eval_id="ev-1"
            ),
            "ev-1",
        ),
        (
            WeightsSet(netuid=7, uids=[3], weights=[65535], block=120, success=True, attempt=2),
            "7@120#2",
        ),
        (
            OrganicWindow(
                key_id="k1",
                minute=29_000_000,
                requests=1,
                errors=0,
                prompt_tokens=5,
                completion_tokens=7,
                upstream="king",
            ),
            "k1@29000000/king",
        ),
    ],
    ids=lambda x: type(x).__name__ if not isinstance(x, str) else "",
)
def test_keys_are_stable(event, key) -> None:
    # Keys are persisted as idempotency keys: changing a formula would let retries duplicate.
    assert event.key == key
    assert decode(encode(event)).key == key


def test_keys_ignore_fields_that_do_not_identify_the_fact() -> None:
    first = WeightsSet(netuid=7, uids=[3], weights=[1], block=120, success=False, error="x")
    retry_reply = WeightsSet(netuid=7, uids=[3], weights=[1], block=120, success=True)
    assert first.key == retry_reply.key
