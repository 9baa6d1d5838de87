from __future__ import annotations

from events.types import (
    LiveChallengeScored,
    LiveWeightsComputed,
    decode,
    decode_msgpack,
    encode,
    encode_msgpack,
)

SCORED = LiveChallengeScored(
    validator="v",
    netuid=2,
    uid=3,
    hotkey="hk",
    task="arith",
    kind="organic",
    request_id="v/abc",
    window=29_000_000,
    correct=False,
    latency_ms=-1.0,
    score=0.0,
    ema=0.42,
    counted=True,
    error_kind="timeout",
    error="no answer within 2.0s",
)
COMPUTED = LiveWeightsComputed(
    validator="v", netuid=2, block=99, uids=[1, 3], weights=[0.25, 0.75], scores={"1": 0.1}
)


def test_live_events_round_trip():
    for event in (SCORED, COMPUTED):
        assert decode(encode(event)) == event
    assert decode_msgpack(encode_msgpack([SCORED, COMPUTED])) == [SCORED, COMPUTED]


def test_idempotency_keys():
    assert SCORED.key == "v/abc"
    assert COMPUTED.key == "v/2@99"
