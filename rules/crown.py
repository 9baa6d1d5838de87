"""The crown rule (DESIGN.md section 5), the one place it lives, as a pure function.

A challenger takes the crown iff it passed the gate, its score beats the measured noise, and
    score > king_score * (1 + eps(age)),   eps(age) = 0.01 * max(0, 1 - age / 50400 blocks)
where ``age`` is how many blocks the king has held the crown: a fresh king is protected by a
1% margin that decays to nothing over a week of blocks. Ties go to the incumbent. The king is
re-measured every round; a king that fails the gate is dethroned, and then the challenger
only has to pass and beat the noise.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "EPS_BASE",
    "EPS_DECAY_BLOCKS",
    "CrownDecision",
    "crowned_over_no_king",
    "decide",
    "eps",
    "CrownOutcome",
]

EPS_BASE = 0.01
EPS_DECAY_BLOCKS = 50_400

CrownOutcome = Literal["crowned", "defended", "dethroned", "vacant"]


class CrownDecision(msgspec.Struct, frozen=True, kw_only=True):
    # crowned: the challenger is the new king. defended: the king stays. dethroned: the king
    # failed and nobody replaces it. vacant: there was no king and nobody qualified.
    outcome: CrownOutcome
    threshold: float  # the score the challenger had to exceed
    reason: str
    king_dethroned: bool  # the king failed the gate this round (whoever wins)


def eps(age_blocks: int) -> float:
    """The incumbent's margin after holding the crown for ``age_blocks`` blocks."""
    return EPS_BASE * max(0.0, 1.0 - age_blocks / EPS_DECAY_BLOCKS)


def decide(
    *,
    challenger_score: float,
    challenger_passed: bool,
    noise: float,
    king_score: float | None,
    king_passed: bool = True,
    king_age_blocks: int = 0,
) -> CrownDecision:
    """Decide one round. ``king_score`` is None when there is no king; scores are >= 0."""
    has_king = king_score is not None and king_passed
    king_dethroned = king_score is not None and not king_passed
    threshold = max(noise, king_score * (1 + eps(king_age_blocks)) if has_king else 0.0)
    if challenger_passed and challenger_score > threshold:
        reason = (
            f"score {challenger_score:.4f} > {threshold:.4f} "
            f"(noise {noise:.4f}, king {king_score if has_king else 'none'})"
        )
        return CrownDecision(
            outcome="crowned", threshold=threshold, reason=reason, king_dethroned=king_dethroned
        )
    why = (
        "challenger failed the gate"
        if not challenger_passed
        else f"score {challenger_score:.4f} <= {threshold:.4f}"
    )
    if has_king:
        return CrownDecision(
            outcome="defended", threshold=threshold, reason=why, king_dethroned=False
        )
    if king_score is not None:
        return CrownDecision(
            outcome="dethroned",
            threshold=threshold,
            reason=f"king failed the gate; {why}",
            king_dethroned=True,
        )
    return CrownDecision(outcome="vacant", threshold=threshold, reason=why, king_dethroned=False)


def crowned_over_no_king(*, score: float, passed: bool, noise: float) -> bool:
    """Whether this rule would crown an evaluation result on an empty throne (the integrity bar)."""
    decision = decide(
        challenger_score=score, challenger_passed=passed, noise=noise, king_score=None
    )
    return decision.outcome == "crowned"
