"""The king: one value for who holds the crown, and the one rule for when a reign ends.

The crown keeper decides (:mod:`rules.crown_policy`) and records ``KingCrowned``,
``KingDethroned`` and ``RoundDecided`` made from a :class:`King`; everyone else reads the king
back from those events (the scheduler with :meth:`King.from_round_decided`, to re-measure it;
the king's server and the gateway with the folds below), so none can disagree on who reigns:

    follow_crown(king, event)      the king after a crown event (the king's server)
    follow_serving(serving, event) where the king answers organic traffic (the gateway)

A dethronement names the hotkey and the digest it ends (:func:`ends_reign`): a stale one, for an
earlier image of the same hotkey, leaves a later reign alone. The ``kings`` SQL view
(``events.projections``) lists the same events, and a test checks it agrees with these folds.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.types import Event, KingCrowned, KingDethroned, KingServing, RoundDecided

__all__ = ["King", "ends_reign", "follow_crown", "follow_serving"]


@dataclass(frozen=True)
class King:
    """The miner holding the crown: a hotkey's image, pinned by digest, crowned at a block."""

    hotkey: str
    uid: int
    digest: str
    image: str
    score: float  # its last measured score (refreshed by each round's re-measurement)
    since_block: int
    submitted_block: int
    eval_id: str  # the evaluation that crowned it
    # Outcomes of its last organic checks, oldest first (True: passed); the crown keeper's only.
    organic: tuple[bool, ...] = ()

    @property
    def ref(self) -> str:
        """The pinned reference its server pulls."""
        return f"{self.image}@{self.digest}"

    def crowned(self, previous: King | None) -> KingCrowned:
        """The event that records this king's crowning (over ``previous``, if any)."""
        return KingCrowned(
            hotkey=self.hotkey,
            digest=self.digest,
            image=self.image,
            score=self.score,
            block=self.since_block,
            eval_id=self.eval_id,
            previous_hotkey=None if previous is None else previous.hotkey,
            uid=self.uid,
            submitted_block=self.submitted_block,
        )

    def round_decided(self, round_no: int) -> RoundDecided:
        """The event that closes round ``round_no`` with this king on the throne."""
        return RoundDecided(
            round=round_no,
            king_hotkey=self.hotkey,
            king_uid=self.uid,
            king_digest=self.digest,
            king_image=self.image,
            king_score=self.score,
            king_since_block=self.since_block,
            king_submitted_block=self.submitted_block,
            king_eval_id=self.eval_id,
        )

    def dethroned(self, eval_id: str, reason: str) -> KingDethroned:
        """The event that ends this reign; ``eval_id`` names its cause."""
        return KingDethroned(hotkey=self.hotkey, digest=self.digest, eval_id=eval_id, reason=reason)

    @classmethod
    def from_round_decided(cls, event: RoundDecided) -> King | None:
        """The king a ``RoundDecided`` names (None for an empty throne), for the scheduler."""
        if event.king_hotkey is None:
            return None
        return cls(
            hotkey=event.king_hotkey,
            uid=event.king_uid,
            digest=event.king_digest,
            image=event.king_image,
            score=event.king_score,
            since_block=event.king_since_block,
            submitted_block=event.king_submitted_block,
            eval_id=event.king_eval_id,
        )

    @classmethod
    def from_crowned(cls, event: KingCrowned) -> King:
        return cls(
            hotkey=event.hotkey,
            uid=event.uid,
            digest=event.digest,
            image=event.image,
            score=event.score,
            since_block=event.block,
            submitted_block=event.submitted_block,
            eval_id=event.eval_id,
        )


def ends_reign(event: KingDethroned, hotkey: str, digest: str) -> bool:
    """Whether ``event`` ends the reign of ``hotkey``'s image ``digest``."""
    return (event.hotkey, event.digest) == (hotkey, digest)


def follow_crown(king: King | None, event: Event) -> King | None:
    """The king once ``event`` is applied; events other than crowns change nothing."""
    match event:
        case KingCrowned():
            return King.from_crowned(event)
        case KingDethroned() if king is not None and ends_reign(event, king.hotkey, king.digest):
            return None
        case _:
            return king


def follow_serving(serving: KingServing | None, event: Event) -> KingServing | None:
    """Where the king answers once ``event`` is applied: its latest ``KingServing``, until that
    reign ends. A new king's server announces itself once healthy; until then the previous
    king keeps answering."""
    match event:
        case KingServing():
            return event
        case KingDethroned() if serving is not None and ends_reign(
            event, serving.hotkey, serving.digest
        ):
            return None
        case _:
            return serving
