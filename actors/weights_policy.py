"""Which weights the validator wants on chain, as one pure function of the crown."""

from __future__ import annotations

__all__ = ["desired_weights"]


def desired_weights(king_uid: int | None) -> dict[int, float]:
    """All weight to the king. No king: no opinion, so the validator sets nothing."""
    if king_uid is None or king_uid < 0:
        return {}
    return {king_uid: 1.0}
