"""Which weights the validator wants on chain, and when it sends them: pure functions of plain data.

What: all weight to the king. With no king, the ``no_king`` policy decides: ``owner`` puts all
weight on the subnet owner's hotkey, the subnet's "burn uid" (current runtimes burn the miner
incentive weighted to it), ``none`` sets nothing, so the validator's weights age out.

When: a validator whose weights are older than the subnet's activity cutoff stops counting, so
weights are set again on a schedule even when nothing changed: once per tempo (each epoch then
sees weights set since the last one), never more often than the rate limit allows, and at least
twice per activity cutoff. A change is sent as soon as the rate limit allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "NO_KING_POLICIES",
    "NoKingPolicy",
    "WeightsClock",
    "desired_weights",
    "next_set_block",
    "refresh_interval",
    "weights_due",
]

NoKingPolicy = Literal["owner", "none"]
NO_KING_POLICIES: tuple[str, ...] = get_args(NoKingPolicy)


def desired_weights(
    king_uid: int | None, owner_uid: int | None, no_king: NoKingPolicy = "owner"
) -> dict[int, float]:
    """All weight to the king; with none (``None``), what the ``no_king`` policy says.

    ``{}`` means set nothing: the policy is ``none``, the owner's hotkey has no uid, or the king
    has none (a negative uid: crowned before its registration was seen).
    """
    if no_king not in NO_KING_POLICIES:
        raise ValueError(f"no_king must be one of {', '.join(NO_KING_POLICIES)}, got {no_king!r}")
    if king_uid is not None:
        return {king_uid: 1.0} if king_uid >= 0 else {}
    if no_king == "owner" and owner_uid is not None:
        return {owner_uid: 1.0}
    return {}


@dataclass(frozen=True)
class WeightsClock:
    """The chain's timing facts for one validator's weights, in blocks.

    ``last_update`` is the block of its last set (or commit, under commit-reveal), 0 if never:
    the later of the chain's ``LastUpdate`` and the last set the event log recorded.
    """

    head: int
    last_update: int
    tempo: int
    rate_limit: int
    activity_cutoff: int


def refresh_interval(tempo: int, rate_limit: int, activity_cutoff: int) -> int:
    """Blocks between two sets of unchanged weights: a tempo, within the cutoff and rate limit."""
    return max(1, rate_limit, min(tempo, activity_cutoff // 2))


def next_set_block(clock: WeightsClock, changed: bool) -> int:
    """The first block a set may land in: at once for a change, else after the refresh interval."""
    if clock.last_update == 0:
        return 0
    allowed = clock.last_update + clock.rate_limit
    if changed:
        return allowed
    interval = refresh_interval(clock.tempo, clock.rate_limit, clock.activity_cutoff)
    return max(allowed, clock.last_update + interval)


def weights_due(clock: WeightsClock, changed: bool) -> bool:
    """Whether a set sent now is due and allowed (it lands in ``head + 1`` at the earliest)."""
    return clock.head + 1 >= next_set_block(clock, changed)
