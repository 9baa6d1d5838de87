"""The scheduler's decisions as a deterministic fold over its input events.

``QueueState.apply(event)`` returns the events the scheduler decides at that point of the log.
Replaying the same inputs in the same order re-derives the same decisions (same eval ids, same
rounds), so a restarted scheduler appends nothing new: the log drops duplicate keys. No clock,
no I/O. The one clock input, :class:`RoundDue`, is recorded in the log before it is folded, so
which submissions a round takes is fixed by the log's order, not by when the actor woke up.

Rules:
- FIFO by commit block (then hotkey), ``challengers_per_round`` per round.
- A digest that already has a pass/fail verdict, or is queued for another hotkey, is skipped.
- A newer commitment from a hotkey supersedes its queued one; a hotkey being evaluated keeps its
  new commitment queued until its eval ends (one submission per hotkey at a time).
- Every round re-measures the king (role ``king``) beside the challengers.
- A challenger whose eval ended in ``error`` (the validator's side failed, not the miner) is
  queued again for the next round, at most ``error_retries`` times, then skipped with the reason.
- Rounds are sequential: the next opens only after the crown keeper decided the last.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from events.types import (
    EvalFinished,
    EvalQueued,
    Event,
    MinerDeregistered,
    RoundDecided,
    RoundDue,
    RoundOpened,
    SubmissionCommitted,
    SubmissionSkipped,
)

__all__ = [
    "INPUT_TYPES",
    "KingRef",
    "QueueState",
    "eval_id_for",
    "fold_queue",
]

# What the scheduler folds. Its own outputs (RoundOpened, EvalQueued, SubmissionSkipped) are not
# here: it re-derives them from these, never reads them back.
INPUT_TYPES: tuple[type[Event], ...] = (
    SubmissionCommitted,
    MinerDeregistered,
    RoundDue,
    EvalFinished,
    RoundDecided,
)


def eval_id_for(digest: str, round_no: int) -> str:
    """Deterministic eval id: the same digest in the same round always gets the same id."""
    h = hashlib.sha256(f"{digest}|{round_no}".encode()).hexdigest()[:12]
    return f"r{round_no}-{h}"


@dataclass(frozen=True)
class KingRef:
    """The king as the crown keeper last decided it."""

    hotkey: str
    uid: int
    image: str
    digest: str
    submitted_block: int


@dataclass
class OpenRound:
    number: int
    evals: dict[str, EvalQueued]
    finished: set[str] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return len(self.finished) == len(self.evals)


@dataclass
class QueueState:
    challengers_per_round: int = 4
    error_retries: int = 2
    pending: dict[str, SubmissionCommitted] = field(default_factory=dict)
    # digest -> eval id of the eval that judged it (pass or fail); never evaluated again.
    judged: dict[str, str] = field(default_factory=dict)
    king: KingRef | None = None
    # eval id -> the commitment a challenger eval evaluates; submission key -> errored evals.
    sources: dict[str, SubmissionCommitted] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    round: OpenRound | None = None
    last_round: int = 0
    head_block: int = 0

    # --- queries -------------------------------------------------------------------------------

    def queue(self) -> list[SubmissionCommitted]:
        """Pending challengers in the order they will be taken."""
        return sorted(self.pending.values(), key=lambda s: (s.block, s.hotkey))

    def in_flight(self) -> list[EvalQueued]:
        """Evals of the open round that have no verdict yet."""
        if self.round is None:
            return []
        return [q for eid, q in self.round.evals.items() if eid not in self.round.finished]

    def round_due(self) -> bool:
        """True when a RoundDue event would open a round now."""
        return self.round is None and bool(self.pending)

    # --- fold ----------------------------------------------------------------------------------

    def apply(self, event: Event) -> list[Event]:
        """Fold one input event; return the decisions it causes (possibly none)."""
        match event:
            case SubmissionCommitted():
                return self._on_submission(event)
            case MinerDeregistered():
                return self._on_deregistered(event)
            case RoundDue():
                return self._on_round_due(event)
            case EvalFinished():
                return self._on_finished(event)
            case RoundDecided():
                self._on_decided(event)
        return []

    def _on_submission(self, s: SubmissionCommitted) -> list[Event]:
        self.head_block = max(self.head_block, s.block)
        if s.digest in self.judged:
            return [_skip(s, f"digest already evaluated in eval {self.judged[s.digest]}")]
        if self.king is not None and self.king.digest == s.digest:
            return [_skip(s, f"digest is the king's ({self.king.hotkey})")]
        for other in [*self.pending.values(), *self.in_flight()]:
            if other.digest == s.digest and other.hotkey != s.hotkey:
                return [_skip(s, f"duplicate of {other.hotkey}'s digest, committed earlier")]
        out: list[Event] = []
        queued = self.pending.get(s.hotkey)
        if queued is not None:
            if s.block <= queued.block:
                return []  # an older commitment arriving late changes nothing
            out.append(_skip(queued, f"superseded by the commitment at block {s.block}"))
        self.pending[s.hotkey] = s
        return out

    def _on_deregistered(self, d: MinerDeregistered) -> list[Event]:
        self.head_block = max(self.head_block, d.block)
        if self.king is not None and self.king.hotkey == d.hotkey:
            self.king = None
        queued = self.pending.pop(d.hotkey, None)
        if queued is None:
            return []
        return [_skip(queued, f"miner deregistered at block {d.block}")]

    def _on_round_due(self, due: RoundDue) -> list[Event]:
        if due.round != self.last_round + 1 or not self.round_due():
            return []
        taken = self.queue()[: self.challengers_per_round]
        evals: list[EvalQueued] = []
        if self.king is not None:
            k = self.king
            evals.append(_queued(due, k.hotkey, k.image, k.digest, "king", k.submitted_block))
        evals += [_queued(due, s.hotkey, s.image, s.digest, "challenger", s.block) for s in taken]
        for s in taken:
            del self.pending[s.hotkey]
            self.sources[eval_id_for(s.digest, due.round)] = s
        self.last_round = due.round
        self.round = OpenRound(due.round, {q.eval_id: q for q in evals})
        opened = RoundOpened(
            round=due.round, block=due.block, seed=due.seed, eval_ids=[q.eval_id for q in evals]
        )
        return [opened, *evals]

    def _on_finished(self, f: EvalFinished) -> list[Event]:
        if self.round is None or f.eval_id not in self.round.evals:
            return []
        self.round.finished.add(f.eval_id)
        if f.verdict != "error":
            self.judged.setdefault(f.digest, f.eval_id)
            return []
        source = self.sources.get(f.eval_id)
        if source is None:
            return []  # the king's re-measurement: it is measured again next round anyway
        errors = self.errors[source.key] = self.errors.get(source.key, 0) + 1
        if source.hotkey in self.pending:
            return []  # a newer commitment from the same miner replaces this one
        if errors > self.error_retries:
            return [_skip(source, f"evaluation failed on the validator's side {errors} times")]
        self.pending[source.hotkey] = source
        return []

    def _on_decided(self, d: RoundDecided) -> None:
        if self.round is None or d.round != self.round.number:
            return
        self.round = None
        if d.king_hotkey is None:
            self.king = None
        else:
            self.king = KingRef(
                d.king_hotkey, d.king_uid, d.king_image, d.king_digest, d.king_submitted_block
            )


def fold_queue(
    events: list[Event], challengers_per_round: int = 4
) -> tuple[QueueState, list[Event]]:
    """Fold a whole history; return the state and every decision made along the way."""
    state = QueueState(challengers_per_round=challengers_per_round)
    out: list[Event] = []
    for e in events:
        out += state.apply(e)
    return state, out


def _skip(s: SubmissionCommitted, reason: str) -> SubmissionSkipped:
    return SubmissionSkipped(hotkey=s.hotkey, block=s.block, digest=s.digest, reason=reason)


def _queued(
    due: RoundDue, hotkey: str, image: str, digest: str, role: str, block: int
) -> EvalQueued:
    return EvalQueued(
        eval_id=eval_id_for(digest, due.round),
        hotkey=hotkey,
        image=image,
        digest=digest,
        role=role,  # type: ignore[arg-type]
        submitted_block=block,
        round_seed=due.seed,
    )
