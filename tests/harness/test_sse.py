"""The SSE parser on hand-written streams: splits, batches, errors, [DONE] rules."""

import json

import pytest

from harness.sse import SSEParser, StreamError


def _event(content: str, ids: list[int], logprobs: list[float], finish: str | None = None) -> bytes:
    entries = [
        {"token": f"token_id:{i}", "logprob": lp} for i, lp in zip(ids, logprobs, strict=True)
    ]
    chunk = {
        "choices": [
            {
                "delta": {"content": content},
                "logprobs": {"content": entries},
                "finish_reason": finish,
            }
        ]
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


ROLE = b'data: {"choices":[{"delta":{"role":"assistant","content":""},"logprobs":null}]}\n\n'
DONE = b"data: [DONE]\n\n"


def test_events_split_across_chunks_keep_their_arrival_time():
    stream = ROLE + _event("ab", [1], [-0.5]) + _event("c", [2], [-1.0]) + DONE
    parser = SSEParser()
    events = []
    for offset in range(0, len(stream), 7):
        events += parser.feed(stream[offset : offset + 7], arrival=float(offset))
    parser.finish()
    assert [e.token_ids for e in events] == [(1,), (2,)]
    assert [e.text for e in events] == ["ab", "c"]
    # each event is stamped with the chunk that completed it
    assert events[0].arrival < events[1].arrival
    assert parser.done


def test_several_tokens_in_one_event_and_several_events_in_one_chunk():
    stream = ROLE + _event("xyz", [5, 6, 7], [-0.1, -0.2, -0.3]) + _event("w", [8], [-0.4]) + DONE
    parser = SSEParser()
    events = parser.feed(stream, arrival=1.5)
    parser.finish()
    assert [e.token_ids for e in events] == [(5, 6, 7), (8,)]
    assert events[0].logprobs == (-0.1, -0.2, -0.3)
    assert {e.arrival for e in events} == {1.5}


def test_crlf_separators_and_keepalive_comments_are_accepted():
    stream = b": keep-alive\r\n\r\n" + _event("a", [1], [-0.1]).replace(b"\n\n", b"\r\n\r\n") + DONE
    parser = SSEParser()
    assert [e.token_ids for e in parser.feed(stream, 0.0)] == [(1,)]
    parser.finish()


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (b"data: {not json\n\n", "malformed_event"),
        (b"hello world\n\n", "malformed_event"),
        (b'data: {"error": {"message": "engine died", "code": 500}}\n\n', "error_event"),
        (b'data: {"choices":[{"delta":{"content":"a"},"logprobs":null}]}\n\n', "missing_logprobs"),
        (_event("a", [1], [-0.1]).replace(b"token_id:1", b"a"), "bad_token_id"),
        (DONE + _event("a", [1], [-0.1]), "data_after_done"),
    ],
)
def test_malformed_streams_are_rejected_with_a_reason(stream: bytes, reason: str):
    parser = SSEParser()
    with pytest.raises(StreamError) as caught:
        parser.feed(stream, 0.0)
    assert caught.value.reason == reason


def test_a_stream_without_done_is_rejected():
    parser = SSEParser()
    parser.feed(ROLE + _event("a", [1], [-0.1]), 0.0)
    with pytest.raises(StreamError) as caught:
        parser.finish()
    assert caught.value.reason == "missing_done"
