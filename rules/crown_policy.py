"""The crown keeper's decisions as a deterministic fold over its input events.

Inputs are what others wrote: rounds and evals from the scheduler, verdicts from the evaluators,
registrations from the chain watcher. The crown keeper never reads back its own KingCrowned,
CrownDefended, KingDethroned or RoundDecided: it re-derives them, so a restart decides nothing
twice and nothing differently (the log drops duplicate keys).

A round is decided once every eval it listed has a verdict:
1. The king's re-measurement: a ``fail`` dethrones the king; a ``pass`` refreshes its score; an
   ``error`` (the validator's own trouble) keeps the king at its last score.
2. The best passing challenger (score, then earliest commit) meets the crown rule of
   ``rules.crown.decide``: beat the noise and the king's decaying margin, ties to the
   incumbent. The other passing challengers are defended against.
3. ``RoundDecided`` names the king after the round, for the scheduler's next re-measurement.

Between rounds, the gateway's organic checks of the king's digest (``OrganicChecked``, see
``serve_apps.organic_check``) dethrone it for ``organic_mismatch`` once ``ORGANIC_FAILS`` of its
last ``ORGANIC_WINDOW`` checks failed. The check is built never to fail an honest answer (doubt
means not judged), so one failure is already strong evidence; still, one fluke (a reference
engine that served a changed model for a moment, an answer the re-scorer mis-split) must not cost
a crown, nor may two far apart over a long reign. A king that cheats on organic traffic fails
nearly every check and falls at its third.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from events.types import (
    CrownDefended,
    EvalFinished,
    EvalQueued,
    Event,
    HotkeySwapped,
    MinerDeregistered,
    MinerRegistered,
    OrganicChecked,
    RoundDecided,
    RoundOpened,
    SubmissionCommitted,
)
from rules.crown import decide
from rules.king import King

__all__ = ["INPUT_TYPES", "ORGANIC_FAILS", "ORGANIC_WINDOW", "CrownState", "fold_crown"]

ORGANIC_WINDOW = 10
ORGANIC_FAILS = 3

INPUT_TYPES: tuple[type[Event], ...] = (
    MinerRegistered,
    MinerDeregistered,
    HotkeySwapped,
    SubmissionCommitted,
    RoundOpened,
    EvalQueued,
    EvalFinished,
    OrganicChecked,
)


@dataclass
class CrownState:
    uids: dict[str, int] = field(default_factory=dict)
    king: King | None = None
    rounds: dict[int, RoundOpened] = field(default_factory=dict)
    queued: dict[str, EvalQueued] = field(default_factory=dict)
    finished: dict[str, EvalFinished] = field(default_factory=dict)
    decided: set[int] = field(default_factory=set)

    def apply(self, event: Event) -> list[Event]:
        """Fold one input event; return the decisions it causes (possibly none)."""
        match event:
            case MinerRegistered() | SubmissionCommitted():
                self.uids[event.hotkey] = event.uid
            case MinerDeregistered():
                return self._on_deregistered(event)
            case HotkeySwapped():
                self._on_swapped(event)
            case RoundOpened():
                self.rounds[event.round] = event
                return self._decide_ready()
            case EvalQueued():
                self.queued[event.eval_id] = event
                return self._decide_ready()
            case EvalFinished():
                self.finished[event.eval_id] = event
                return self._decide_ready()
            case OrganicChecked():
                return self._on_organic(event)
        return []

    def _on_organic(self, c: OrganicChecked) -> list[Event]:
        king = self.king
        if king is None or (king.hotkey, king.digest) != (c.hotkey, c.digest):
            return []  # a check of an earlier king, recorded after its fall
        recent = (*king.organic, c.passed)[-ORGANIC_WINDOW:]
        failed = recent.count(False)
        if failed < ORGANIC_FAILS:
            self.king = replace(king, organic=recent)
            return []
        self.king = None
        return [
            king.dethroned(
                f"organic:{c.request_id}",
                f"organic_mismatch: {failed} of its last {len(recent)} organic answers "
                f"failed re-scoring on the reference engine (last: {c.reason})",
            )
        ]

    def _on_swapped(self, s: HotkeySwapped) -> None:
        """Same neuron, new hotkey: the king keeps its crown under the new one."""
        if self.uids.get(s.old_hotkey) == s.uid:
            del self.uids[s.old_hotkey]
        self.uids[s.new_hotkey] = s.uid
        if self.king is not None and self.king.hotkey == s.old_hotkey:
            self.king = replace(self.king, hotkey=s.new_hotkey)

    def _on_deregistered(self, d: MinerDeregistered) -> list[Event]:
        if self.uids.get(d.hotkey) == d.uid:
            del self.uids[d.hotkey]
        king = self.king
        if king is None or king.hotkey != d.hotkey:
            return []
        self.king = None
        return [
            king.dethroned(
                f"deregistered:{d.hotkey}@{d.block}", f"king deregistered at block {d.block}"
            )
        ]

    def _decide_ready(self) -> list[Event]:
        out: list[Event] = []
        for number in sorted(self.rounds):
            opened = self.rounds[number]
            if number in self.decided or not self._complete(opened):
                continue
            out += self._decide(opened)
            self.decided.add(number)
        return out

    def _complete(self, opened: RoundOpened) -> bool:
        return all(e in self.queued and e in self.finished for e in opened.eval_ids)

    def _decide(self, opened: RoundOpened) -> list[Event]:
        out: list[Event] = []
        challengers: list[tuple[EvalQueued, EvalFinished]] = []
        for eval_id in opened.eval_ids:
            q, f = self.queued[eval_id], self.finished[eval_id]
            if q.role == "king":
                out += self._remeasured(q, f)
            elif f.verdict == "pass":
                challengers.append((q, f))
        challengers.sort(key=lambda qf: (-qf[1].score, qf[0].submitted_block, qf[0].hotkey))
        for q, f in challengers:
            out += self._challenge(opened, q, f)
        k = self.king
        out.append(RoundDecided(round=opened.round) if k is None else k.round_decided(opened.round))
        return out

    def _remeasured(self, q: EvalQueued, f: EvalFinished) -> list[Event]:
        king = self.king
        if king is None or king.digest != q.digest:
            return []  # dethroned between the round's opening and its end
        if f.verdict == "pass":
            self.king = replace(king, score=f.score)
            return []
        if f.verdict == "error":
            return []
        self.king = None
        return [king.dethroned(f.eval_id, f"failed its re-measurement: {f.reason}")]

    def _challenge(self, opened: RoundOpened, q: EvalQueued, f: EvalFinished) -> list[Event]:
        king = self.king
        decision = decide(
            challenger_score=f.score,
            challenger_passed=True,
            noise=f.noise,
            king_score=None if king is None else king.score,
            king_age_blocks=0 if king is None else max(0, opened.block - king.since_block),
        )
        if decision.outcome != "crowned":
            if king is None:
                return []
            return [
                CrownDefended(hotkey=king.hotkey, score=king.score, challenger_eval_id=f.eval_id)
            ]
        self.king = King(
            hotkey=q.hotkey,
            uid=self.uids.get(q.hotkey, -1),
            digest=q.digest,
            image=q.image,
            score=f.score,
            since_block=opened.block,
            submitted_block=q.submitted_block,
            eval_id=f.eval_id,
        )
        return [self.king.crowned(king)]


def fold_crown(events: list[Event]) -> tuple[CrownState, list[Event]]:
    """Fold a whole history; return the state and every decision made along the way."""
    state = CrownState()
    out: list[Event] = []
    for e in events:
        out += state.apply(e)
    return state, out
