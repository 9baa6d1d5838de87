"""Scoring of live-endpoint miners: pure functions from results to scores to weights.

* A challenge scores 0 when the answer is wrong, missing or late. A correct answer scores
  ``correctness_weight`` plus the rest in proportion to how much of the timeout it left unused,
  so any correct miner outranks any wrong one and, among correct miners, the faster one wins.
* Each miner's score is an exponential moving average; its first counted result sets it.
* Dropout cap: at most ``max_scored_per_window`` results per miner enter the average in one
  window; further results that window are recorded but not counted, so a miner that happens to be
  sampled often (or that receives much organic traffic) cannot have its average dominated by one
  burst, good or bad.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import msgspec

from events.types import LiveChallengeScored

__all__ = [
    "ScoreState",
    "ScoringRule",
    "challenge_score",
    "ema",
    "evolve",
    "project",
    "should_count",
    "weights_from_scores",
    "window_of",
]


class ScoringRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    timeout_s: float
    correctness_weight: float = 0.7
    ema_alpha: float = 0.3
    window_s: float = 60.0
    max_scored_per_window: int = 20

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if not 0.0 <= self.correctness_weight <= 1.0:
            raise ValueError(f"correctness_weight must be in [0, 1], got {self.correctness_weight}")
        if not 0.0 < self.ema_alpha <= 1.0:
            raise ValueError(f"ema_alpha must be in (0, 1], got {self.ema_alpha}")
        if self.window_s <= 0 or self.max_scored_per_window < 1:
            raise ValueError("window_s must be positive and max_scored_per_window at least 1")


def challenge_score(correct: bool, latency_s: float | None, rule: ScoringRule) -> float:
    if not correct or latency_s is None or not math.isfinite(latency_s):
        return 0.0
    speed = max(0.0, 1.0 - max(0.0, latency_s) / rule.timeout_s)
    if speed == 0.0:
        return 0.0
    return rule.correctness_weight + (1.0 - rule.correctness_weight) * speed


def ema(previous: float | None, sample: float, alpha: float) -> float:
    if previous is None:
        return sample
    return alpha * sample + (1.0 - alpha) * previous


def window_of(now_s: float, rule: ScoringRule) -> int:
    return int(now_s // rule.window_s)


class ScoreState(msgspec.Struct, frozen=True):
    """Per-miner averages (keyed by hotkey) and how many results each had counted per window."""

    ema: dict[str, float] = msgspec.field(default_factory=dict)
    uid: dict[str, int] = msgspec.field(default_factory=dict)
    counted: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)


def should_count(state: ScoreState, hotkey: str, window: int, rule: ScoringRule) -> bool:
    last_window, n = state.counted.get(hotkey, (window, 0))
    return last_window != window or n < rule.max_scored_per_window


def evolve(state: ScoreState, event: LiveChallengeScored) -> ScoreState:
    """Fold one scored result into the state. Results that were not counted change nothing."""
    if not event.counted:
        return state
    last_window, n = state.counted.get(event.hotkey, (event.window, 0))
    n = n + 1 if last_window == event.window else 1
    return ScoreState(
        ema={**state.ema, event.hotkey: event.ema},
        uid={**state.uid, event.hotkey: event.uid},
        counted={**state.counted, event.hotkey: (event.window, n)},
    )


def project(events: Iterable[LiveChallengeScored], state: ScoreState | None = None) -> ScoreState:
    state = state or ScoreState()
    for event in events:
        state = evolve(state, event)
    return state


def weights_from_scores(scores: Mapping[int, float]) -> dict[int, float]:
    """Weights proportional to scores, summing to 1; empty when no miner scored above 0."""
    positive = {uid: s for uid, s in scores.items() if s > 0 and math.isfinite(s)}
    total = sum(positive.values())
    if total <= 0:
        return {}
    return {uid: s / total for uid, s in sorted(positive.items())}
