from __future__ import annotations

import math

import pytest

from events.types import LiveChallengeScored
from live.scoring import (
    ScoreState,
    ScoringRule,
    challenge_score,
    ema,
    evolve,
    project,
    should_count,
    weights_from_scores,
)

RULE = ScoringRule(timeout_s=2.0, correctness_weight=0.7, ema_alpha=0.5, max_scored_per_window=2)


@pytest.mark.parametrize(
    ("correct", "latency", "expected"),
    [
        (True, 0.0, 1.0),
        (True, 1.0, 0.85),
        (True, 2.0, 0.0),  # at the timeout: as good as no answer
        (True, None, 0.0),
        (True, math.nan, 0.0),
        (False, 0.0, 0.0),
    ],
)
def test_challenge_score(correct, latency, expected):
    assert challenge_score(correct, latency, RULE) == pytest.approx(expected)


def test_fast_correct_beats_slow_correct_beats_wrong():
    fast, slow = challenge_score(True, 0.01, RULE), challenge_score(True, 0.5, RULE)
    assert fast > slow > challenge_score(False, 0.001, RULE)


def test_ema_starts_at_first_sample():
    assert ema(None, 0.8, 0.5) == 0.8
    assert ema(0.8, 0.0, 0.5) == pytest.approx(0.4)


def _scored(hotkey, window, ema_after, counted=True, uid=1):
    return LiveChallengeScored(
        validator="v",
        netuid=1,
        uid=uid,
        hotkey=hotkey,
        task="arith",
        kind="synthetic",
        request_id=f"{hotkey}/{window}/{ema_after}",
        window=window,
        correct=True,
        latency_ms=1.0,
        score=ema_after,
        ema=ema_after,
        counted=counted,
    )


def test_dropout_cap_per_window():
    state = ScoreState()
    assert should_count(state, "m", 0, RULE)
    state = project([_scored("m", 0, 0.5), _scored("m", 0, 0.6)], state)
    assert not should_count(state, "m", 0, RULE)
    assert should_count(state, "other", 0, RULE)
    assert should_count(state, "m", 1, RULE)  # a new window resets the count


def test_uncounted_results_change_nothing():
    state = project([_scored("m", 0, 0.5)])
    assert evolve(state, _scored("m", 0, 0.9, counted=False)) == state


def test_fold_restores_averages():
    state = project(
        [_scored("a", 0, 0.5, uid=1), _scored("b", 0, 0.2, uid=2), _scored("a", 1, 0.7)]
    )
    assert state.ema == {"a": 0.7, "b": 0.2}
    assert state.uid == {"a": 1, "b": 2}


def test_weights_from_scores():
    assert weights_from_scores({3: 0.6, 1: 0.2, 2: 0.0}) == pytest.approx({1: 0.25, 3: 0.75})
    assert weights_from_scores({1: 0.0, 2: math.nan}) == {}


def test_rule_rejects_nonsense():
    with pytest.raises(ValueError, match="timeout_s"):
        ScoringRule(timeout_s=0)
