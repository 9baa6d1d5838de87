"""The scheduler's decisions as a deterministic fold over its input events.

``QueueState.apply(event)`` returns the events the scheduler decides at that point of the log.
Replaying the same inputs in the same order re-derives the same decisions (same eval ids, same
rounds), so a restarted scheduler appends nothing new: the log drops duplicate keys. No clock,
no I/O. The one clock input, :class:`RoundDue`, is recorded in the log before it is folded, so
which submissions a round takes is fixed by the log's order, not by when the actor woke up.

Rules:
- FIFO by commit block (then hotkey), ``challengers_per_round`` per round; a round takes only
  submissions whose image the scheduler inspected (:class:`ImageInspected`).
- A digest that already has a pass/fail verdict is skipped.
- A copy of an earlier submission of another hotkey (:mod:`rules.copy_rule`) is skipped with a
  reason ``copy_of <hotkey>@<block> (same <signal>)``, as soon as both are known: the earlier
  commitment wins whichever was inspected first.
- A submission whose image the registry refused for good at inspection (``ImageInspected.refused``:
  no such manifest, wrong digest, too large, unreadable) is skipped with :func:`refusal_reason`;
  a registry that could not answer is asked again by the scheduler and logs nothing.
- A newer commitment from a hotkey supersedes its queued one; a hotkey being evaluated keeps its
  new commitment queued until its eval ends (one submission per hotkey at a time).
- Every round re-measures the king (role ``king``) beside the challengers; with no challenger
  ready, a round opens for the king alone once ``remeasure_every_blocks`` chain blocks passed
  since the last round opened (0: only challengers open rounds).
- A submission already taken into a round is never recalled: the copy rule and the inspection
  that feeds it run while it is pending.
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
    ImageInspected,
    MinerDeregistered,
    RoundDecided,
    RoundDue,
    RoundOpened,
    SubmissionCommitted,
    SubmissionSkipped,
)
from rules.copy_rule import Fingerprint, FingerprintIndex, copy_of
from rules.king import King

__all__ = [
    "INPUT_TYPES",
    "QueueState",
    "eval_id_for",
    "fold_queue",
    "refusal_reason",
    "OpenRound",
]

# What the scheduler folds. Its own outputs (RoundOpened, EvalQueued, SubmissionSkipped) are not
# here: it re-derives them from these, never reads them back.
INPUT_TYPES: tuple[type[Event], ...] = (
    SubmissionCommitted,
    ImageInspected,
    MinerDeregistered,
    RoundDue,
    EvalFinished,
    RoundDecided,
)


def eval_id_for(digest: str, round_no: int) -> str:
    """Deterministic eval id: the same digest in the same round always gets the same id."""
    h = hashlib.sha256(f"{digest}|{round_no}".encode()).hexdigest()[:12]
    return f"r{round_no}-{h}"


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
    remeasure_every_blocks: int = 0
    pending: dict[str, SubmissionCommitted] = field(default_factory=dict)
    # Every commitment ever seen (the copy rule's memory) and the keys whose image was inspected.
    images: FingerprintIndex = field(default_factory=FingerprintIndex)
    inspected: set[str] = field(default_factory=set)
    # digest -> eval id of the eval that judged it (pass or fail); never evaluated again.
    judged: dict[str, str] = field(default_factory=dict)
    king: King | None = None
    # eval id -> the commitment a challenger eval evaluates; submission key -> errored evals.
    sources: dict[str, SubmissionCommitted] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    round: OpenRound | None = None
    last_round: int = 0
    # Chain block the last round opened at: the re-measurement clock counts from it.
    opened_block: int = 0

    # --- queries -------------------------------------------------------------------------------

    def queue(self) -> list[SubmissionCommitted]:
        """Pending challengers, inspected or not, in commit order (block, then hotkey)."""
        return sorted(self.pending.values(), key=lambda s: (s.block, s.hotkey))

    def ready(self) -> list[SubmissionCommitted]:
        """Pending challengers a round would take now (inspected), in order."""
        return [s for s in self.queue() if s.key in self.inspected]

    def uninspected(self) -> list[SubmissionCommitted]:
        """Pending challengers whose image the scheduler has yet to inspect, in order."""
        return [s for s in self.queue() if s.key not in self.inspected]

    def in_flight(self) -> list[EvalQueued]:
        """Evals of the open round that have no verdict yet."""
        if self.round is None:
            return []
        return [q for eid, q in self.round.evals.items() if eid not in self.round.finished]

    def remeasure_block(self) -> int | None:
        """Chain block from which a round opens for the king alone; None when none would."""
        if self.king is None or self.remeasure_every_blocks <= 0:
            return None
        return self.opened_block + self.remeasure_every_blocks

    def round_due(self, head_block: int) -> bool:
        """True when a RoundDue event at chain block ``head_block`` would open a round."""
        if self.round is not None:
            return False
        remeasure = self.remeasure_block()
        return bool(self.ready()) or (remeasure is not None and head_block >= remeasure)

    # --- fold ----------------------------------------------------------------------------------

    def apply(self, event: Event) -> list[Event]:
        """Fold one input event; return the decisions it causes (possibly none)."""
        match event:
            case SubmissionCommitted():
                return self._on_submission(event)
            case ImageInspected():
                return self._on_inspected(event)
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
        # Remembered even when skipped below: a commitment is the original of any later copy.
        if s.key not in self.images.by_key:
            self.images.add(Fingerprint(s.hotkey, s.block, s.digest))
        if s.digest in self.judged:
            return [_skip(s, f"digest already evaluated in eval {self.judged[s.digest]}")]
        out: list[Event] = []
        queued = self.pending.get(s.hotkey)
        if queued is not None:
            if s.block <= queued.block:
                return self._skip_copies(self.images.by_key[s.key])
            out.append(_skip(queued, f"superseded by the commitment at block {s.block}"))
        self.pending[s.hotkey] = s
        return out + self._skip_copies(self.images.by_key[s.key])

    def _on_inspected(self, i: ImageInspected) -> list[Event]:
        self.inspected.add(i.key)
        if i.refused:
            queued = self.pending.get(i.hotkey)
            if queued is None or queued.key != i.key:
                return []  # superseded or gone meanwhile: nothing left to end
            # Final: a digest pushed after this answer would be judged on an image the copy
            # rule never saw. The commitment stays indexed by its digest alone.
            del self.pending[i.hotkey]
            return [_skip(queued, refusal_reason(i.refused, i.error))]
        fp = Fingerprint(i.hotkey, i.block, i.digest, i.config_digest, i.runtime_digest)
        self.images.add(fp)
        return self._skip_copies(fp)

    def _skip_copies(self, changed: Fingerprint) -> list[Event]:
        """Skip every pending submission that ``changed`` (new or now inspected) shows a copy."""
        related = {f.key for f in self.images.sharing(changed)}
        out: list[Event] = []
        for s in self.queue():
            if s.key not in related:
                continue
            fp = self.images.by_key[s.key]
            copy = copy_of(fp, self.images.sharing(fp))
            if copy is not None:
                del self.pending[s.hotkey]
                out.append(_skip(s, copy.reason))
        return out

    def _on_deregistered(self, d: MinerDeregistered) -> list[Event]:
        if self.king is not None and self.king.hotkey == d.hotkey:
            self.king = None
        queued = self.pending.pop(d.hotkey, None)
        if queued is None:
            return []
        return [_skip(queued, f"miner deregistered at block {d.block}")]

    def _on_round_due(self, due: RoundDue) -> list[Event]:
        if due.round != self.last_round + 1 or not self.round_due(due.block):
            return []
        taken = self.ready()[: self.challengers_per_round]
        evals: list[EvalQueued] = []
        if self.king is not None:
            k = self.king
            evals.append(_queued(due, k.hotkey, k.image, k.digest, "king", k.submitted_block))
        evals += [_queued(due, s.hotkey, s.image, s.digest, "challenger", s.block) for s in taken]
        for s in taken:
            del self.pending[s.hotkey]
            self.sources[eval_id_for(s.digest, due.round)] = s
        self.last_round = due.round
        self.opened_block = due.block
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
        self.king = King.from_round_decided(d)


def fold_queue(
    events: list[Event], challengers_per_round: int = 4, remeasure_every_blocks: int = 0
) -> tuple[QueueState, list[Event]]:
    """Fold a whole history; return the state and every decision made along the way."""
    state = QueueState(
        challengers_per_round=challengers_per_round,
        remeasure_every_blocks=remeasure_every_blocks,
    )
    out: list[Event] = []
    for e in events:
        out += state.apply(e)
    return state, out


def refusal_reason(code: str, error: str) -> str:
    """``SubmissionSkipped.reason`` for an image its registry refused for good at inspection."""
    return (
        f"image refused ({code}): {error}. The validator reads the image from its registry when"
        " the commitment lands: push the image before committing, then commit again"
    )


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
