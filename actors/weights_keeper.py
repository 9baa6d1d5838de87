"""Keeps the validator's weights on chain: what the weights policy wants, refreshed on schedule.

The crown keeper calls :meth:`WeightsKeeper.step` with the king's uid after every fold step. The
keeper reads the chain's timing (:func:`chain.weights.read_weights_timing`), asks the pure
:mod:`actors.weights_policy` whether a set is due, sends it, and returns its record as an event.
"Last set" is the later of the chain's ``LastUpdate`` and the last set the log recorded, so a
restart never sends twice inside the rate limit. Between due blocks a step costs one head read.

Where the subnet runs commit-reveal, a due set is a commit (``WeightsCommitted``, with its salt)
and each commit is revealed in its reveal window (``WeightsSet`` naming the commit). Commits are
folded back from the log on restart, so one made before a restart is still revealed.
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
from chain.client import ChainClient, ChainError, DispatchFailed
from chain.commit_reveal import (
    WeightsCommit,
    commit_weights,
    new_salt,
    read_pending_commits,
    reveal_weights,
    reveal_window,
)
from chain.weights import (
    WeightsError,
    WeightsRateLimited,
    WeightsTiming,
    read_owner_uid,
    read_weight_limits,
    read_weights,
    read_weights_timing,
    set_weights,
    weights_for_emit,
)
from events.types import Event, WeightsCommitted, WeightsSet

__all__ = ["HISTORY_TYPES", "UNREVEALABLE", "WeightsKeeper", "same_shares"]

log = logging.getLogger(__name__)

# What the keeper wrote before a restart and folds back in: its own records, never decisions.
HISTORY_TYPES: tuple[type[Event], ...] = (WeightsSet, WeightsCommitted)
# Reveal errors no retry can mend: the commit is given up (recorded), not tried again.
UNREVEALABLE = frozenset(
    f"SubtensorModule.{name}"
    for name in ("InvalidRevealCommitHashNotMatch", "NoWeightsCommitFound", "ExpiredWeightCommit")
)


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
        # Commits not yet revealed nor given up, by hash.
        self.commits: dict[str, WeightsCommitted] = {}
        settled: set[str] = set()
        for event in history:
            if getattr(event, "netuid", None) != netuid:
                continue
            if isinstance(event, WeightsSet):
                self.attempt = max(self.attempt, event.attempt)
                settled.add(event.commit_hash)
                if event.success and not event.commit_hash:  # a reveal is not what the limit counts
                    self.last_set = max(self.last_set, event.block)
            elif isinstance(event, WeightsCommitted):
                self.commits[event.commit_hash] = event
                self.last_set = max(self.last_set, event.block)
        for digest in settled & self.commits.keys():
            del self.commits[digest]
        self.in_place: dict[int, float] | None = None
        self.plan: _Plan | None = None
        self.next_try = 0.0

    def step(self, king_uid: int | None, reason: str = "") -> list[Event]:
        """Set (or commit, or reveal) what is due; the records of what was sent."""
        out: list[Event] = []
        if time.monotonic() < self.next_try:
            return out
        try:
            if not self._planned(king_uid):
                self._reconcile(king_uid, reason, out)
        except WeightsRateLimited as exc:  # a set by another process with this hotkey
            log.info("weights rate-limited: %s", exc)
            self.next_try = time.monotonic() + self.retry_s
        except (ChainError, WeightsError) as exc:
            self.next_try = time.monotonic() + self.retry_s
            out.append(self._record_failure(king_uid, reason, exc))
        return out

    def _planned(self, king_uid: int | None) -> bool:
        """Whether the last full read already said there is nothing to do yet (one head read)."""
        plan = self.plan
        if plan is None or plan.king_uid != king_uid:
            return False
        return self.client.finalized_number() + 1 < plan.block

    def _reconcile(self, king_uid: int | None, reason: str, out: list[Event]) -> None:
        self.plan = None
        hotkey = self.keypair.ss58_address
        timing = read_weights_timing(self.client, self.netuid, hotkey)
        if timing.commit_reveal:
            self._reveal_due(timing, out)
        else:
            self.commits.clear()  # commit-reveal switched off: the chain refuses their reveals
        wanted = desired_weights(king_uid, read_owner_uid(self.client, self.netuid), self.no_king)
        if not wanted:
            # Nothing to set: look again next tempo (the owner may register, a king may come).
            self.in_place = None
            self._plan(king_uid, timing, timing.head + 1 + max(1, timing.tempo))
            return
        pending = max(self.commits.values(), key=lambda c: c.block, default=None)
        if pending is None:
            current = read_weights(self.client, self.netuid, hotkey)
        else:  # what the chain will hold once the newest commit is revealed
            current = {uid: float(w) for uid, w in zip(pending.uids, pending.weights, strict=True)}
        changed = not same_shares(current, wanted)
        clock = self._clock(timing)
        self.in_place = None if changed else wanted
        if not weights_due(clock, changed):
            self._plan(king_uid, timing, next_set_block(clock, changed))
            return
        if timing.commit_reveal:
            out.append(self._commit(timing, wanted, reason))
            self._plan(king_uid, timing, next_set_block(self._clock(timing), False))
        else:
            out.append(self._set(wanted, reason))
        self.in_place = wanted

    def _plan(self, king_uid: int | None, timing: WeightsTiming, block: int) -> None:
        """Nothing to do before ``block``, nor before the first pending commit's reveal."""
        reveals = [self._window(timing, c).start for c in self.commits.values()]
        self.plan = _Plan(king_uid, min([block, *reveals]))

    def _set(self, wanted: dict[int, float], reason: str) -> WeightsSet:
        result = set_weights(self.client, self.keypair, self.netuid, wanted)
        self.attempt += 1
        self.last_set = result.block
        return WeightsSet(
            netuid=self.netuid,
            uids=list(result.uids),
            weights=list(result.weights),
            block=result.block,
            success=True,
            extrinsic_hash=result.extrinsic_hash,
            attempt=self.attempt,
            reason_eval_id=reason,
        )

    def _commit(
        self, timing: WeightsTiming, wanted: dict[int, float], reason: str
    ) -> WeightsCommitted:
        limits = read_weight_limits(self.client, self.netuid, timing.uid)
        uids, weights = weights_for_emit(wanted, limits)
        commit = WeightsCommit(uids, weights, new_salt(), limits.version_key)
        digest, result = commit_weights(self.client, self.keypair, self.netuid, commit)
        committed = WeightsCommitted(
            netuid=self.netuid,
            commit_hash=digest,
            uids=uids,
            weights=weights,
            salt=commit.salt,
            version_key=commit.version_key,
            block=result.block,
            extrinsic_hash=result.extrinsic_hash,
            reason_eval_id=reason,
        )
        self.commits[digest] = committed
        self.last_set = result.block
        return committed

    def _reveal_due(self, timing: WeightsTiming, out: list[Event]) -> None:
        """Reveal every commit whose window is open; give up on those whose window has passed."""
        if not self.commits:
            return
        on_chain = set(read_pending_commits(self.client, self.netuid, self.keypair.ss58_address))
        for c in sorted(self.commits.values(), key=lambda c: c.block):
            window = self._window(timing, c)
            if c.commit_hash not in on_chain:
                # Revealed by a run whose record was lost, or dropped by the chain.
                del self.commits[c.commit_hash]
            elif timing.head + 1 > window[-1]:
                del self.commits[c.commit_hash]
                self.attempt += 1
                out.append(
                    self._reveal_record(
                        c,
                        timing.head,
                        success=False,
                        error=f"commit at block {c.block} expired unrevealed after block "
                        f"{window[-1]}; its weights were never set",
                    )
                )
            elif timing.head + 1 >= window.start:
                commit = WeightsCommit(c.uids, c.weights, c.salt, c.version_key)
                try:
                    result = reveal_weights(self.client, self.keypair, self.netuid, commit)
                except DispatchFailed as exc:
                    if exc.error not in UNREVEALABLE:
                        raise
                    del self.commits[c.commit_hash]
                    self.attempt += 1
                    out.append(
                        self._reveal_record(c, exc.result.block, success=False, error=str(exc))
                    )
                    continue
                del self.commits[c.commit_hash]
                self.attempt += 1
                out.append(
                    self._reveal_record(
                        c, result.block, success=True, extrinsic_hash=result.extrinsic_hash
                    )
                )

    def _window(self, timing: WeightsTiming, c: WeightsCommitted) -> range:
        return reveal_window(self.netuid, timing.tempo, timing.reveal_period, c.block)

    def _reveal_record(self, c: WeightsCommitted, block: int, **outcome) -> WeightsSet:
        return WeightsSet(
            netuid=self.netuid,
            uids=list(c.uids),
            weights=list(c.weights),
            block=block,
            attempt=self.attempt,
            reason_eval_id=c.reason_eval_id,
            commit_hash=c.commit_hash,
            **outcome,
        )

    def _clock(self, timing: WeightsTiming) -> WeightsClock:
        return WeightsClock(
            head=timing.head,
            last_update=max(timing.last_update, self.last_set),
            tempo=timing.tempo,
            rate_limit=timing.rate_limit,
            activity_cutoff=timing.activity_cutoff,
        )

    def _record_failure(self, king_uid: int | None, reason: str, exc: Exception) -> WeightsSet:
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
