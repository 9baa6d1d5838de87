"""Every fact and decision Arena records, as one msgspec tagged union.

Schema rules (msgspec's schema-evolution contract): a new field gets a default and goes last;
an existing field's type never changes; a change that old readers would misread bumps the
class's ``VERSION``. Decoding rejects unknown types and versions newer than this code knows.

Each event names its own idempotency key (``event.key``): appending the same ``(type, key)``
twice is a no-op, so a retried append after ``ActorUnavailableError`` cannot duplicate a fact.
"""

from __future__ import annotations

import functools
from typing import ClassVar, Literal, Union

import msgspec

from events.errors import EventDecodeError
from rules.reasons import Verdict

__all__ = [
    "BaselineMeasured",
    "CrownDefended",
    "EffectFailed",
    "Event",
    "EvalFinished",
    "EvalQueued",
    "EvalStarted",
    "EventDecodeError",
    "HotkeySwapped",
    "ImageInspected",
    "KingCrowned",
    "KingDethroned",
    "KingServing",
    "LiveChallengeScored",
    "LiveWeightsComputed",
    "MinerDeregistered",
    "MinerRegistered",
    "OrganicChecked",
    "OrganicWindow",
    "SubmissionCommitted",
    "SubmissionRejected",
    "WeightsCommitted",
    "WeightsSet",
    "decode",
    "decode_msgpack",
    "encode",
    "encode_msgpack",
    "event_types",
    "EvalRole",
    "SubmissionSkipped",
    "RoundDue",
    "RoundOpened",
    "RoundDecided",
]

EvalRole = Literal["challenger", "king"]


class Event(msgspec.Struct, tag_field="type", tag=False, frozen=True, kw_only=True):
    """Base of every event. ``v`` is the schema version the writer used.

    Each event class names its stored tag explicitly (``class KingCrowned(Event,
    tag="KingCrowned")``): the tag is what every stored log holds in its ``type`` column, so it
    never follows a rename of the class. A class without one cannot join the union (msgspec
    refuses to decode untagged members), and ``tests/events/test_golden.py`` holds one encoded
    event of each tag that must keep decoding.
    """

    VERSION: ClassVar[int] = 1
    v: int = 1

    @property
    def key(self) -> str:
        """Idempotency key, unique within the event's type."""
        raise NotImplementedError(f"{type(self).__name__} must define key")


# --- chain -----------------------------------------------------------------------------------


class MinerRegistered(Event, tag="MinerRegistered"):
    netuid: int
    uid: int
    hotkey: str
    coldkey: str
    block: int

    @property
    def key(self) -> str:
        return f"{self.netuid}/{self.uid}/{self.hotkey}@{self.block}"


class MinerDeregistered(Event, tag="MinerDeregistered"):
    netuid: int
    uid: int
    hotkey: str
    block: int

    @property
    def key(self) -> str:
        return f"{self.netuid}/{self.uid}/{self.hotkey}@{self.block}"


class HotkeySwapped(Event, tag="HotkeySwapped"):
    """The neuron at ``uid`` changed hotkey by ``swap_hotkey``: same neuron, same coldkey."""

    netuid: int
    uid: int
    old_hotkey: str
    new_hotkey: str
    block: int

    @property
    def key(self) -> str:
        return f"{self.netuid}/{self.uid}/{self.old_hotkey}->{self.new_hotkey}@{self.block}"


class SubmissionCommitted(Event, tag="SubmissionCommitted"):
    """A miner committed ``image@sha256:digest`` on chain at ``block``."""

    netuid: int
    uid: int
    hotkey: str
    block: int
    image: str
    digest: str

    @property
    def key(self) -> str:
        return f"{self.hotkey}@{self.block}"

    @property
    def ref(self) -> str:
        return f"{self.image}@{self.digest}"


class SubmissionRejected(Event, tag="SubmissionRejected"):
    """A commitment that failed validation; ``raw`` is what was on chain, ``reason`` why."""

    netuid: int
    hotkey: str
    block: int
    raw: str
    reason: str

    @property
    def key(self) -> str:
        return f"{self.hotkey}@{self.block}"


# --- evaluation ------------------------------------------------------------------------------


class EvalQueued(Event, tag="EvalQueued"):
    """The scheduler decided to evaluate ``image@digest`` for ``hotkey`` in a round."""

    eval_id: str
    hotkey: str
    image: str
    digest: str
    role: EvalRole
    submitted_block: int
    round_seed: str

    @property
    def key(self) -> str:
        return self.eval_id


class EvalStarted(Event, tag="EvalStarted"):
    eval_id: str
    attempt: int
    worker: str

    @property
    def key(self) -> str:
        return f"{self.eval_id}#{self.attempt}"


class BaselineMeasured(Event, tag="BaselineMeasured"):
    """One baseline pass of an eval; ``phase`` is ``before`` or ``after`` the challenger."""

    eval_id: str
    phase: Literal["before", "after"]
    metrics: dict[str, float]

    @property
    def key(self) -> str:
        return f"{self.eval_id}/{self.phase}"


class EvalFinished(Event, tag="EvalFinished"):
    eval_id: str
    hotkey: str
    digest: str
    verdict: Verdict
    reason: str
    score: float
    noise: float
    metrics: dict[str, float]
    role: EvalRole = "challenger"
    # Evidence file name -> sha256 (harness.evidence), beside the event log; `arena replay`.
    evidence: dict[str, str] = {}

    @property
    def key(self) -> str:
        return self.eval_id


# --- crown and weights -----------------------------------------------------------------------


class KingCrowned(Event, tag="KingCrowned"):
    hotkey: str
    digest: str
    image: str
    score: float
    block: int
    eval_id: str
    previous_hotkey: str | None = None
    # Added later (defaults read older logs): the rest of the king's record (rules.king.King).
    uid: int = -1
    submitted_block: int = 0

    @property
    def key(self) -> str:
        return self.eval_id


class CrownDefended(Event, tag="CrownDefended"):
    hotkey: str
    score: float
    challenger_eval_id: str

    @property
    def key(self) -> str:
        return self.challenger_eval_id


class KingDethroned(Event, tag="KingDethroned"):
    hotkey: str
    digest: str
    eval_id: str
    reason: str

    @property
    def key(self) -> str:
        return self.eval_id


class WeightsSet(Event, tag="WeightsSet"):
    netuid: int
    uids: list[int]
    weights: list[int]
    block: int
    success: bool
    extrinsic_hash: str = ""
    error: str = ""
    attempt: int = 1
    reason_eval_id: str = ""
    # Under commit-reveal: the commit this set revealed (or that expired unrevealed).
    commit_hash: str = ""

    @property
    def key(self) -> str:
        return f"{self.netuid}@{self.block}#{self.attempt}"


class WeightsCommitted(Event, tag="WeightsCommitted"):
    """Under commit-reveal, a commit of these weights landed at ``block``: what its reveal needs.

    The salt stays in the log so that a crown keeper restarted between commit and reveal still
    reveals; the reveal is the ``WeightsSet`` naming ``commit_hash``.
    """

    netuid: int
    commit_hash: str
    uids: list[int]
    weights: list[int]
    salt: list[int]
    version_key: int
    block: int
    extrinsic_hash: str = ""
    reason_eval_id: str = ""

    @property
    def key(self) -> str:
        return self.commit_hash


# --- organic traffic ---------------------------------------------------------------------------


class KingServing(Event, tag="KingServing"):
    """The king's container answers organic traffic at ``endpoint``.

    A restarted server gets a new endpoint for the same crown, so the endpoint is part of the key.
    """

    hotkey: str
    digest: str
    endpoint: str
    since_block: int

    @property
    def key(self) -> str:
        return f"{self.hotkey}/{self.digest}@{self.since_block}->{self.endpoint}"


class OrganicWindow(Event, tag="OrganicWindow"):
    """Gateway usage for one API key over one minute (``minute`` is a unix minute)."""

    key_id: str
    minute: int
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    upstream: str = ""

    @property
    def key(self) -> str:
        return f"{self.key_id}@{self.minute}/{self.upstream}"


class OrganicChecked(Event, tag="OrganicChecked"):
    """The gateway re-scored one of the king's organic answers on the reference engine.

    ``rule`` is how it was judged (``serve_apps.organic_check``): ``greedy`` (temperature 0):
    ``gap`` is the share of the answer's tokens far below the reference's argmax; ``sampled``:
    ``gap`` is how many nats the answer's mean token logprob lies below that of the reference's
    own answer to the same request. ``request_id`` is the gateway's own, never the king's.
    """

    hotkey: str
    digest: str
    request_id: str
    passed: bool
    reason: str
    rule: Literal["greedy", "sampled"]
    answer_tokens: int
    reference_tokens: int
    gap: float

    @property
    def key(self) -> str:
        return self.request_id


def event_types() -> tuple[type[Event], ...]:
    """Every concrete event class, including those defined by extension modules."""
    seen: list[type[Event]] = []
    stack = list(Event.__subclasses__())
    while stack:
        cls = stack.pop(0)
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return tuple(seen)


_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


@functools.cache
def _decoders(
    types: tuple[type[Event], ...],
) -> tuple[msgspec.json.Decoder, msgspec.msgpack.Decoder]:
    # Built once per set of known types; extension modules that add events get a fresh pair.
    union = Union[types]  # noqa: UP007 - a runtime union over a tuple of classes
    return msgspec.json.Decoder(union), msgspec.msgpack.Decoder(list[union])


def _check_version(event: Event) -> Event:
    if event.v > event.VERSION:
        raise EventDecodeError(
            f"{type(event).__name__} v{event.v} is newer than this code understands "
            f"(v{event.VERSION}); upgrade arena before reading this log"
        )
    return event


def encode(event: Event) -> bytes:
    """JSON bytes, the form stored in the log's ``payload`` column."""
    return _json_encoder.encode(event)


def decode(data: bytes | str) -> Event:
    """Inverse of :func:`encode`; raises :class:`EventDecodeError` on anything unknown."""
    try:
        return _check_version(_decoders(event_types())[0].decode(data))
    except msgspec.ValidationError as exc:
        raise EventDecodeError(f"not a known event: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"malformed event JSON: {exc}") from exc


def encode_msgpack(events: list[Event]) -> bytes:
    """Compact bytes for shipping events across Ray (about 7x cheaper than pickled structs)."""
    return _msgpack_encoder.encode(events)


def decode_msgpack(data: bytes) -> list[Event]:
    """Inverse of :func:`encode_msgpack`; raises :class:`EventDecodeError` on anything unknown."""
    try:
        return [_check_version(e) for e in _decoders(event_types())[1].decode(data)]
    except msgspec.ValidationError as exc:
        raise EventDecodeError(f"not a known event: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"malformed event msgpack: {exc}") from exc


# --- actors ------------------------------------------------------------------------------------


class EffectFailed(Event, tag="EffectFailed"):
    """An actor's effect (``read`` or ``append`` of the log, its ``on_step``) failed and is tried
    again in ``retry_in_s``; its fold state is kept (``actors.fold_loop``)."""

    actor: str
    run_id: str  # one per run of the actor's loop
    effect: str
    seq: int  # the last input event folded
    attempt: int
    error: str
    retry_in_s: float

    @property
    def key(self) -> str:
        return f"{self.actor}/{self.run_id}/{self.effect}@{self.seq}#{self.attempt}"


# --- rounds (scheduler and crown keeper) -------------------------------------------------------


class SubmissionSkipped(Event, tag="SubmissionSkipped"):
    """The scheduler will not evaluate this commitment; ``reason`` says why."""

    hotkey: str
    block: int
    digest: str
    reason: str

    @property
    def key(self) -> str:
        return f"{self.hotkey}@{self.block}"


class ImageInspected(Event, tag="ImageInspected"):
    """The registry's answer for the image committed by ``hotkey`` at ``block``, before a pull.

    ``config_digest`` and ``runtime_digest`` (its layers in order plus how it runs: command,
    entrypoint, environment, working directory, user, ports) are its fingerprint, which the copy
    rule compares. ``refused`` is the reason code (``manifest_not_found``, ``too_large``...) when
    the registry's answer refuses the image for good, ``error`` the same in words; the
    fingerprint is then empty and the submission ends there.
    """

    hotkey: str
    block: int
    digest: str
    size_bytes: int = 0
    config_digest: str = ""
    runtime_digest: str = ""
    refused: str = ""
    error: str = ""

    @property
    def key(self) -> str:
        return f"{self.hotkey}@{self.block}"


class RoundDue(Event, tag="RoundDue"):
    """The scheduler's clock: round ``round`` may open now, seeded by the hash of chain ``block``.

    Recorded before it is folded, so the submissions a round takes are fixed by the log's order.
    """

    round: int
    block: int
    seed: str

    @property
    def key(self) -> str:
        return f"{self.round}@{self.block}"


class RoundOpened(Event, tag="RoundOpened"):
    """Round ``round`` evaluates ``eval_ids`` (the king's re-measurement among them)."""

    round: int
    block: int
    seed: str
    eval_ids: list[str]

    @property
    def key(self) -> str:
        return str(self.round)


class RoundDecided(Event, tag="RoundDecided"):
    """The crown keeper applied the crown rule to round ``round``; the king after it, if any."""

    round: int
    king_hotkey: str | None = None
    king_uid: int = -1
    king_digest: str = ""
    king_image: str = ""
    king_score: float = 0.0
    king_since_block: int = 0
    king_submitted_block: int = 0
    king_eval_id: str = ""  # added later (older logs read ""): the eval that crowned it

    @property
    def key(self) -> str:
        return str(self.round)


# --- live-endpoint mode (miners serve their own endpoints; see live/) -------------------------


class LiveChallengeScored(Event, tag="LiveChallengeScored"):
    """A validator's verdict on one request it sent to a miner's endpoint.

    ``kind`` is ``synthetic`` (a generated challenge) or ``organic`` (a forwarded user request);
    ``counted`` says whether it entered the miner's average (the per-window dropout cap), and
    ``ema`` is the miner's average after it. ``latency_ms`` is -1 when no answer came back.
    """

    validator: str
    netuid: int
    uid: int
    hotkey: str
    task: str
    kind: Literal["synthetic", "organic"]
    request_id: str
    window: int
    correct: bool
    latency_ms: float
    score: float
    ema: float
    counted: bool
    error_kind: str = ""
    error: str = ""

    @property
    def key(self) -> str:
        return self.request_id


class LiveWeightsComputed(Event, tag="LiveWeightsComputed"):
    """Weights a live-mode validator derived from its miners' averages at chain ``block``."""

    validator: str
    netuid: int
    block: int
    uids: list[int]
    weights: list[float]
    scores: dict[str, float]

    @property
    def key(self) -> str:
        return f"{self.validator}/{self.netuid}@{self.block}"
