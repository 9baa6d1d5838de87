"""What the scheduler sends an Evaluator: a round's unfinished evals, each with its attempt number.

The attempt travels beside the logged ``EvalQueued``, not inside it: the scheduler numbers the
attempts (one per eval per dispatch), the Evaluator logs them in ``EvalStarted``, and the queued
event stays the fact the scheduler decided once.

    data = encode_attempts([EvalAttempt(queued=q, attempt=2) for q in unfinished])
    evaluator.evaluate_round.remote(data)          # the Evaluator calls decode_attempts(data)
"""

from __future__ import annotations

import msgspec

from events.types import EvalQueued

__all__ = ["EvalAttempt", "decode_attempts", "encode_attempts"]


class EvalAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """Attempt ``attempt`` (1-based) of the eval ``queued``."""

    queued: EvalQueued
    attempt: int


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[EvalAttempt])


def encode_attempts(attempts: list[EvalAttempt]) -> bytes:
    """Msgpack bytes for one ``evaluate_round`` call."""
    return _encoder.encode(attempts)


def decode_attempts(data: bytes) -> list[EvalAttempt]:
    """Inverse of :func:`encode_attempts`; raises ``ValueError`` on anything else or on none."""
    try:
        attempts = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(
            f"evaluate_round() takes encode_attempts() bytes (EvalQueued plus attempt): {exc}"
        ) from exc
    if not attempts:
        raise ValueError("evaluate_round() got no evals; the scheduler sends a round's unfinished")
    seeds = {a.queued.round_seed for a in attempts}
    if len(seeds) != 1:
        raise ValueError(
            f"evaluate_round() got evals of {len(seeds)} round seeds; one call judges one round"
        )
    return attempts
