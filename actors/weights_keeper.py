"""Keeps the validator's weights on chain: what the weights policy wants, refreshed on schedule.

The crown keeper calls :meth:`WeightsKeeper.step` with the king's uid after every fold step. The
keeper reads the chain's timing (:func:`chain.weights.read_weights_timing`), asks the pure
:mod:`actors.weights_policy` whether a set is due, sends it, and returns its record as a
``WeightsSet`` event. "Last set" is the later of the chain's ``LastUpdate`` and the last set the
log recorded, so a restart never sends twice inside the rate limit. Between due blocks a step
costs one head read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from substrateinterface import Keypair

from actors.weights_policy import (
    NoKingPolicy,
    WeightsClock,
    desired_weights,
    next_set_block,
    weights_due,
)
from chain.client import ChainClient, ChainError
from chain.weights import (
    WeightsRateLimited,
    WeightsTiming,
    read_owner_uid,
    read_weights,
    read_weights_timing,
    set_weights,
)
from events.types import Event, WeightsSet

__all__ = ["HISTORY_TYPES", "WeightsKeeper"]

log = logging.getLogger(__name__)

# What the keeper wrote before a restart and folds back in: its own records, never decisions.
HISTORY_TYPES: tuple[type[Event], ...] = (WeightsSet,)


@dataclass(frozen=True)
class _Plan:
    """What the last full read decided: nothing to do for ``king_uid`` before ``block``."""

    king_uid: int | None
    block: int


class WeightsKeeper:
    """One validator's weights on one subnet; effects only through ``client``."""

    def __init__(
        self,
        client: ChainClient,
        keypair: Keypair,
        netuid: int,
        *,
        no_king: NoKingPolicy = "owner",
        retry_s: float = 6.0,
        history: Iterable[Event] = (),
    ) -> None:
        self.client = client
        self.keypair = keypair
        self.netuid = netuid
        self.no_king = no_king
        self.retry_s = retry_s
        self.last_set = 0
        self.attempt = 0
        for event in history:
            if isinstance(event, WeightsSet) and event.netuid == netuid:
                self.attempt = max(self.attempt, event.attempt)
                if event.success:
                    self.last_set = max(self.last_set, event.block)
        self.in_place: dict[int, float] | None = None
        self.plan: _Plan | None = None
        self.next_try = 0.0

    def step(self, king_uid: int | None, reason: str = "") -> list[Event]:
        """Set weights if due; the records of what was sent (none when nothing was due)."""
        if time.monotonic() < self.next_try:
            return []
        try:
            if self._planned(king_uid):
                return []
            return self._reconcile(king_uid, reason)
        except WeightsRateLimited as exc:  # a set by another process with this hotkey
            log.info("weights rate-limited: %s", exc)
            self.next_try = time.monotonic() + self.retry_s
            return []
        except ChainError as exc:
            self.next_try = time.monotonic() + self.retry_s
            return [self._record_failure(king_uid, reason, exc)]

    def _planned(self, king_uid: int | None) -> bool:
        """Whether the last full read already said there is nothing to do yet (one head read)."""
        plan = self.plan
        if plan is None or plan.king_uid != king_uid:
            return False
        return self.client.finalized_number() + 1 < plan.block

    def _reconcile(self, king_uid: int | None, reason: str) -> list[Event]:
        hotkey = self.keypair.ss58_address
        timing = read_weights_timing(self.client, self.netuid, hotkey)
        wanted = desired_weights(king_uid, read_owner_uid(self.client, self.netuid), self.no_king)
        if not wanted:
            # Nothing to set: look again next tempo (the owner may register, a king may come).
            self.in_place = None
            self.plan = _Plan(king_uid, timing.head + 1 + max(1, timing.tempo))
            return []
        changed = not same_shares(read_weights(self.client, self.netuid, hotkey), wanted)
        clock = self._clock(timing)
        self.in_place = None if changed else wanted
        if not weights_due(clock, changed):
            self.plan = _Plan(king_uid, next_set_block(clock, changed))
            return []
        self.plan = None
        result = set_weights(self.client, self.keypair, self.netuid, wanted)
        self.attempt += 1
        self.last_set = result.block
        self.in_place = wanted
        return [
            WeightsSet(
                netuid=self.netuid,
                uids=list(result.uids),
                weights=list(result.weights),
                block=result.block,
                success=True,
                extrinsic_hash=result.extrinsic_hash,
                attempt=self.attempt,
                reason_eval_id=reason,
            )
        ]

    def _clock(self, timing: WeightsTiming) -> WeightsClock:
        return WeightsClock(
            head=timing.head,
            last_update=max(timing.last_update, self.last_set),
            tempo=timing.tempo,
            rate_limit=timing.rate_limit,
            activity_cutoff=timing.activity_cutoff,
        )

    def _record_failure(self, king_uid: int | None, reason: str, exc: ChainError) -> WeightsSet:
        self.plan = None
        self.attempt += 1
        return WeightsSet(
            netuid=self.netuid,
            uids=[] if king_uid is None else [king_uid],
            weights=[],
            block=self._head_or_zero(),
            success=False,
            error=str(exc)[:500],
            attempt=self.attempt,
            reason_eval_id=reason,
        )

    def _head_or_zero(self) -> int:
        try:
            return self.client.finalized_number()
        except ChainError:
            return 0


def same_shares(on_chain: dict[int, float], wanted: dict[int, float]) -> bool:
    """Weights are compared as shares: the chain stores u16 values, not the floats we asked for."""
    total = sum(on_chain.values())
    if total <= 0:
        return False
    shares = {uid: w / total for uid, w in on_chain.items() if w > 0}
    return shares.keys() == wanted.keys() and all(
        abs(shares[uid] - w / sum(wanted.values())) < 1e-3 for uid, w in wanted.items()
    )
