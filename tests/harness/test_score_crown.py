"""Score and crown rule on plain data."""

import pytest

from harness.gate import GateVerdict
from harness.loadgen import RequestResult
from harness.measurement import Measurement
from harness.prompts import Prompt
from rules.crown import EPS_DECAY_BLOCKS, decide, eps
from tests.harness.plain import measurement_of

PASS = GateVerdict(passed=True, reason="ok", details="")
FAIL = GateVerdict(passed=False, reason="off_distribution", details="test")
PROMPTS = [Prompt(i, f"p{i}", 4) for i in range(4)]


def _measurement(ttft: float, duration: float, tokens: int = 4) -> Measurement:
    results = [
        RequestResult(
            prompt_index=p.index,
            success=True,
            ttft=ttft,
            latency=ttft + 0.01 * (tokens - 1),
            itl=[0.01] * (tokens - 1),
            token_ids=list(range(tokens)),
        )
        for p in PROMPTS
    ]
    return measurement_of(PROMPTS, results, duration)


def test_equal_servers_score_zero():
    from harness.score import score

    base = _measurement(0.1, 1.0)
    result = score(base, _measurement(0.1, 1.0), base, PASS)
    assert result.score == 0.0
    assert result.noise == 0.0


def test_faster_challenger_scores_half_of_each_improvement():
    from harness.score import score

    base = _measurement(0.1, 1.0)
    # TTFT 2x better (+1.0), throughput 4/3 better (+1/3)
    result = score(base, _measurement(0.05, 0.75), base, PASS)
    assert result.ttft_improvement == pytest.approx(1.0)
    assert result.throughput_improvement == pytest.approx(1 / 3)
    assert result.score == pytest.approx(0.5 * 1.0 + 0.5 / 3)


@pytest.mark.parametrize(
    ("after_duration", "floor", "expected"),
    [
        (1.0, 0.0, 0.0),  # identical baselines: no noise measured, none assumed
        (1.0, 0.3, 0.3),  # the floor holds when the pair shows less
        (0.8, 0.0, 0.125),  # B' 1.25x B's throughput: half of +25%
        (0.8, 0.1, 0.125),  # the pair shows more than the floor: the pair counts
    ],
)
def test_noise_is_the_baseline_pair_or_the_floor_whichever_is_larger(
    after_duration: float, floor: float, expected: float
):
    from harness.score import score

    before, after = _measurement(0.1, 1.0), _measurement(0.1, after_duration)
    result = score(before, _measurement(0.1, 1.0), after, PASS, noise_floor=floor)
    assert result.noise == pytest.approx(expected)


def test_slower_is_floored_and_a_failed_gate_scores_zero():
    from harness.score import score

    base = _measurement(0.1, 1.0)
    slower = score(base, _measurement(0.2, 0.5), base, PASS)
    assert slower.ttft_improvement == 0.0
    assert slower.throughput_improvement == pytest.approx(1.0)
    failed = score(base, _measurement(0.05, 0.5), base, FAIL)
    assert failed.score == 0.0
    assert failed.raw_score > 0


def test_tokens_past_the_baseline_length_earn_nothing():
    from harness.score import score

    base = _measurement(0.1, 1.0, tokens=4)
    padded = score(base, _measurement(0.1, 1.0, tokens=8), base, PASS)
    assert padded.throughput_improvement == 0.0
    short = score(base, _measurement(0.1, 0.9, tokens=2), base, PASS)
    # half the tokens in 90% of the time: aligned throughput is lower, floored at 0
    assert short.throughput_improvement == 0.0


def test_noise_is_what_one_baseline_earns_against_the_other():
    from harness.score import score

    before, after = _measurement(0.1, 1.0), _measurement(0.08, 1.0)
    result = score(before, _measurement(0.1, 1.0), after, PASS)
    assert result.noise == pytest.approx(0.5 * (0.1 / 0.08 - 1))


def test_eps_decays_to_zero_over_the_window():
    assert eps(0) == 0.01
    assert eps(EPS_DECAY_BLOCKS // 2) == pytest.approx(0.005)
    assert eps(EPS_DECAY_BLOCKS) == 0.0
    assert eps(10 * EPS_DECAY_BLOCKS) == 0.0


def test_challenger_needs_to_beat_the_king_by_eps():
    at_margin = decide(challenger_score=1.01, challenger_passed=True, noise=0.0, king_score=1.0)
    assert at_margin.outcome == "defended"  # a tie at the threshold goes to the incumbent
    above = decide(challenger_score=1.0101, challenger_passed=True, noise=0.0, king_score=1.0)
    assert above.outcome == "crowned"
    old_king = decide(
        challenger_score=1.001,
        challenger_passed=True,
        noise=0.0,
        king_score=1.0,
        king_age_blocks=EPS_DECAY_BLOCKS,
    )
    assert old_king.outcome == "crowned"


def test_crown_needs_more_than_the_noise_and_a_passed_gate():
    noisy = decide(challenger_score=0.2, challenger_passed=True, noise=0.3, king_score=None)
    assert noisy.outcome == "vacant"
    failed = decide(challenger_score=5.0, challenger_passed=False, noise=0.0, king_score=1.0)
    assert failed.outcome == "defended"
    first = decide(challenger_score=0.4, challenger_passed=True, noise=0.3, king_score=None)
    assert first.outcome == "crowned"
    zero = decide(challenger_score=0.0, challenger_passed=True, noise=0.0, king_score=None)
    assert zero.outcome == "vacant"


def test_a_failing_king_is_dethroned():
    nobody = decide(
        challenger_score=0.0, challenger_passed=False, noise=0.0, king_score=2.0, king_passed=False
    )
    assert (nobody.outcome, nobody.king_dethroned) == ("dethroned", True)
    replaced = decide(
        challenger_score=0.5, challenger_passed=True, noise=0.1, king_score=2.0, king_passed=False
    )
    assert (replaced.outcome, replaced.king_dethroned) == ("crowned", True)


@pytest.mark.parametrize(
    ("score", "passed", "noise", "crowned"),
    [
        (0.5, True, 0.3, True),
        (0.3, True, 0.3, False),
        (0.5, False, 0.3, False),
        (0.0, True, 0.0, False),
    ],
)
def test_the_integrity_bar_is_the_crown_rule_on_an_empty_throne(
    score: float, passed: bool, noise: float, crowned: bool
):
    from rules.crown import crowned_over_no_king

    assert crowned_over_no_king(score=score, passed=passed, noise=noise) is crowned
