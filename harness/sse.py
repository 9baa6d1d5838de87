"""The one streaming parser for OpenAI chat-completion Server-Sent Events.

``SSEParser.feed(chunk, arrival)`` takes raw bytes exactly as they came off the socket, with the
time they arrived, and returns the token events completed by that chunk. It copes with events
split across chunks, several events per chunk and several tokens per event (one logprobs entry
per token), and stops at ``data: [DONE]``. Anything a well-behaved server would not send raises
``StreamError`` with a ``reason`` code, so a cheating or broken server is rejected, never
half-parsed. ``finish()`` checks that the stream ended properly.

Token ids come from ``return_tokens_as_token_ids`` (each logprobs token reads ``token_id:N``),
which the load generator always requests: the gate re-scores those ids and checks they decode
to the streamed text.
"""

from __future__ import annotations

import msgspec

from harness.errors import HarnessError
from rules.reasons import StreamReason

__all__ = [
    "ChatChunk",
    "SSEParser",
    "StreamError",
    "TokenEvent",
    "split_events",
    "TokenLogprob",
    "ChoiceLogprobs",
    "Delta",
    "Choice",
]


_TOKEN_ID_PREFIX = "token_id:"


class StreamError(HarnessError):
    """A stream no honest OpenAI-compatible server would send; ``reason`` says which rule broke."""

    def __init__(self, reason: StreamReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: StreamReason = reason
        self.detail = detail


class TokenLogprob(msgspec.Struct):
    # `top_logprobs` is left out on purpose: nothing reads it, and msgspec skips unknown fields
    # without building objects for them.
    token: str
    logprob: float


class ChoiceLogprobs(msgspec.Struct):
    content: list[TokenLogprob] | None = None


class Delta(msgspec.Struct):
    content: str | None = None
    role: str | None = None


class Choice(msgspec.Struct):
    index: int = 0
    delta: Delta = msgspec.field(default_factory=Delta)
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatChunk(msgspec.Struct):
    choices: list[Choice] = []
    # OpenAI servers (vLLM included) put an error object here when generation fails mid-stream.
    error: dict | None = None
    object: str | None = None
    message: str | None = None


class TokenEvent(msgspec.Struct, frozen=True):
    """One SSE event's worth of generated tokens, stamped with the chunk arrival time."""

    arrival: float
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str | None


_decoder = msgspec.json.Decoder(ChatChunk)


def _token_id(token: str) -> int:
    if not token.startswith(_TOKEN_ID_PREFIX):
        raise StreamError("bad_token_id", f"logprobs token {token[:40]!r} is not 'token_id:N'")
    try:
        return int(token[len(_TOKEN_ID_PREFIX) :])
    except ValueError:
        raise StreamError(
            "bad_token_id", f"logprobs token {token[:40]!r} has no integer id"
        ) from None


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Split raw SSE bytes at blank lines: (complete events, incomplete tail).

    Each event comes without its terminating blank line; the tail is what to prepend to the
    next chunk. CRLF line ends (allowed by SSE) are read as LF; a CR whose LF is still in
    flight stays in the tail, so a CRLF split across chunks is still seen.
    """
    if b"\r" in buffer:
        buffer = buffer.replace(b"\r\n", b"\n")
    events = buffer.split(b"\n\n")
    return events[:-1], events[-1]


class SSEParser:
    """Incremental parser for one response body; not reusable across responses."""

    def __init__(self) -> None:
        self._buffer = b""
        self.done = False

    def feed(self, chunk: bytes, arrival: float) -> list[TokenEvent]:
        complete, self._buffer = split_events(self._buffer + chunk if self._buffer else chunk)
        events: list[TokenEvent] = []
        for raw in complete:
            event = self._parse_event(raw, arrival)
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> None:
        """Call when the body ends: the stream must have ended with `data: [DONE]`."""
        if self._buffer.strip():
            self._parse_event(self._buffer, 0.0)
        if not self.done:
            raise StreamError("missing_done", "the stream closed before 'data: [DONE]'")

    def _parse_event(self, raw: bytes, arrival: float) -> TokenEvent | None:
        if raw.startswith(b"data: {") and b"\n" not in raw:  # the usual one-line event
            return self._parse_data(raw[6:], arrival)
        data_lines = []
        for line in raw.splitlines():
            if not line or line.startswith(b":"):
                continue  # blank line or SSE comment (keep-alive)
            if line.startswith(b"data:"):
                data_lines.append(line[5:].lstrip(b" "))
            elif not line.startswith((b"event:", b"id:", b"retry:")):
                raise StreamError("malformed_event", f"line is not an SSE field: {line[:80]!r}")
        if not data_lines:
            return None
        return self._parse_data(b"\n".join(data_lines), arrival)

    def _parse_data(self, data: bytes, arrival: float) -> TokenEvent | None:
        if self.done:
            raise StreamError("data_after_done", f"event after [DONE]: {data[:80]!r}")
        if data == b"[DONE]":
            self.done = True
            return None
        try:
            chunk = _decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise StreamError("malformed_event", f"{exc}: {data[:80]!r}") from None
        if chunk.error is not None or chunk.object == "error":
            detail = chunk.error if chunk.error is not None else chunk.message
            raise StreamError("error_event", f"server error inside the stream: {detail}")
        return _token_event(chunk, arrival)


def _token_event(chunk: ChatChunk, arrival: float) -> TokenEvent | None:
    if not chunk.choices:
        return None  # e.g. a usage-only chunk
    choice = chunk.choices[0]
    text = choice.delta.content or ""
    entries = choice.logprobs.content if choice.logprobs is not None else None
    if not entries:
        if text:
            raise StreamError("missing_logprobs", f"content {text[:40]!r} came without logprobs")
        if choice.finish_reason is None:
            return None  # the role-only opening chunk
        return TokenEvent(arrival, "", (), (), choice.finish_reason)
    if len(entries) == 1:  # the usual event: one token
        entry = entries[0]
        return TokenEvent(
            arrival, text, (_token_id(entry.token),), (entry.logprob,), choice.finish_reason
        )
    return TokenEvent(
        arrival,
        text,
        tuple(_token_id(e.token) for e in entries),
        tuple(e.logprob for e in entries),
        choice.finish_reason,
    )
