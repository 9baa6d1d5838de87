"""The round cost model of ``bench.round`` on plain data: the two orders, the profile's scale,
and the phases read back from a round's timings."""

from __future__ import annotations

import msgspec
import pytest

from bench.round import (
    Phases,
    Split,
    cost_rows,
    measure_seconds,
    measured_phases,
    old_order_seconds,
    round_seconds,
    sn_h200_phases,
    split_time,
)
from harness.eval import Progress
from harness.profile import get_profile

P = Phases(baseline_start_s=10.0, challenger_start_s=20.0, measure_s=5.0)


def test_one_round_pays_for_the_baseline_once() -> None:
    # B0 = 10 + 5, then per challenger C start 20, C 5, B 5.
    assert round_seconds(P, 1) == 45.0
    assert round_seconds(P, 6) == 15.0 + 6 * 30.0
    # Before rounds: per challenger two baseline start-ups and three measurements.
    assert old_order_seconds(P, 1) == 55.0
    assert old_order_seconds(P, 6) == 6 * 55.0


def test_a_bracket_of_two_measures_the_baseline_once_per_two_challengers() -> None:
    # B0 = 10 + 5, then per challenger C start 20 and C 5, and one B of 5 per two of them.
    assert round_seconds(P, 6, challengers_per_baseline=2) == 15.0 + 6 * 25.0 + 3 * 5.0
    # An odd challenger out still gets its own "after".
    assert round_seconds(P, 3, challengers_per_baseline=2) == 15.0 + 3 * 25.0 + 2 * 5.0
    assert round_seconds(P, 6, baseline_stays_up=False, challengers_per_baseline=2) == (
        15.0 + 6 * 25.0 + 3 * (10.0 + 5.0)
    )


def test_a_baseline_that_cannot_stay_up_starts_again_after_each_challenger() -> None:
    assert round_seconds(P, 6, baseline_stays_up=False) == 15.0 + 6 * (30.0 + 10.0)
    # Still cheaper than the old order's two start-ups per challenger.
    assert round_seconds(P, 6, baseline_stays_up=False) < old_order_seconds(P, 6)


def test_the_saving_per_challenger_grows_with_the_round() -> None:
    rows = cost_rows(P, get_profile("local"), (1, 3, 6))
    assert [r.challengers for r in rows] == [1, 3, 6]
    # A round of one saves only the old order's second baseline start-up.
    assert rows[0].old_order_min * 60 - rows[0].round_min * 60 == pytest.approx(10.0)
    ratios = [r.ratio for r in rows]
    assert ratios == sorted(ratios) and ratios[0] < ratios[-1]
    assert all(r.old_order_min == pytest.approx(55.0 / 60) for r in rows)


def test_gpu_minutes_scale_with_the_gpus_the_evaluator_holds() -> None:
    h200 = get_profile("sn-h200")
    (row,) = cost_rows(P, h200, (3,))
    assert h200.evaluator_num_gpus == 4 and not h200.baseline_stays_up
    stopping = round_seconds(
        P, 3, baseline_stays_up=False, challengers_per_baseline=h200.challengers_per_baseline
    )
    assert row.round_gpu_min == pytest.approx(4 * stopping / 60 / 3)
    assert row.old_order_gpu_min == pytest.approx(4 * 55.0 / 60)
    h200x8 = get_profile("sn-h200x8")
    (wide,) = cost_rows(P, h200x8, (3,))
    assert h200x8.evaluator_num_gpus == 8 and h200x8.baseline_stays_up
    wide_s = round_seconds(P, 3, challengers_per_baseline=h200x8.challengers_per_baseline)
    assert wide.round_gpu_min == pytest.approx(8 * wide_s / 60 / 3)
    (local,) = cost_rows(P, get_profile("local"), (3,))
    assert local.round_gpu_min == 0.0  # a CPU evaluation slot holds no GPU
    local_s = round_seconds(
        P, 3, challengers_per_baseline=get_profile("local").challengers_per_baseline
    )
    assert local.round_min == pytest.approx(local_s / 60 / 3)


def test_a_measurement_is_its_warm_up_and_waves_of_requests() -> None:
    profile = msgspec.structs.replace(
        get_profile("local"),
        warmup_requests=2,
        num_prompts=16,
        concurrency_levels=(1, 4),
        passes=3,
        output_tokens=11,
    )
    # One request: 0.5 + 10 * 0.1 = 1.5 s; 2 warm-up + 3 passes * (16 + 4 waves) = 62 of them.
    assert measure_seconds(profile, ttft_s=0.5, tpot_s=0.1) == pytest.approx(62 * 1.5)


def test_sn_h200_measurement_follows_its_profile() -> None:
    h200 = get_profile("sn-h200")
    phases = sn_h200_phases()
    waves = sum(-(-h200.num_prompts // c) for c in h200.concurrency_levels)
    requests = h200.warmup_requests + h200.passes * waves
    assert phases.measure_s / requests == pytest.approx(0.15 + (h200.output_tokens - 1) * 0.025)


def _progress(t: float, phase: str, concurrency: int = 0, requests: int = 0, done: int = 0):
    return t, Progress(
        image=0, images=1, phase=phase, concurrency=concurrency, requests=requests, done=done
    )


def _measurement(warm_up_at: float, last_at: float) -> list[tuple[float, Progress]]:
    """A warm-up of 2 requests, then one pass of 16 at c=1 whose last answer is at ``last_at``."""
    return [
        _progress(warm_up_at, "", requests=2),
        _progress(warm_up_at + 0.5, "", requests=2, done=1),
        _progress(warm_up_at + 1.0, "", concurrency=1, requests=16),
        _progress(last_at, "", concurrency=1, requests=16, done=16),
    ]


def _phase(t: float, phase: str) -> tuple[float, Progress]:
    return _progress(t, phase)


def test_time_splits_into_start_ups_measurements_gate_and_overhead() -> None:
    # Pulls, then B0 started (20 s), warmed up (1 s, its start-up's) and measured (3 s); C1
    # likewise (30 + 1 s, then 4 s); the kept-up baseline checked (0.1 s) and measured with its
    # warm-up (4 s); the gate (1 s).
    timeline = [
        _phase(100.0, "pull"),
        _phase(102.0, "baseline_before"),
        *_measurement(122.0, 126.0),
        _phase(126.5, "challenger"),
        *_measurement(156.5, 161.5),
        _phase(162.0, "baseline_after"),
        *_measurement(162.1, 166.1),
        _phase(166.1, "gate"),
        _phase(167.1, "done"),
    ]
    starts = [(102.5, "baseline"), (127.0, "challenger")]
    split = split_time(timeline, starts, end=168.0)
    assert split.wall_s == 68.0
    assert split.baseline_start_s == [21.0]
    assert split.challenger_start_s == [31.0]
    assert split.measure_s == [3.0, 4.0, 4.0]
    assert split.gate_s == 1.0
    # Pulls 2, after B0 0.5, after C1 0.5, the health check 0.1, after the gate 0.9.
    assert split.overhead_s == pytest.approx(4.0)


def test_a_baseline_started_again_is_a_start_up_and_a_kept_up_one_is_not() -> None:
    timeline = [
        _phase(0.0, "baseline_after"),
        *_measurement(10.0, 14.0),
        _phase(14.0, "baseline_after"),
        *_measurement(14.2, 18.0),
    ]
    # Only the first measurement's phase saw a baseline start; a challenger start is not its.
    split = split_time(timeline, [(1.0, "baseline"), (14.1, "challenger")], end=18.0)
    assert split.baseline_start_s == [11.0]
    assert split.challenger_start_s == []
    assert split.measure_s == [3.0, pytest.approx(3.8)]


def test_phases_are_the_medians_of_every_run() -> None:
    runs = [
        Split(
            wall_s=100.0,
            baseline_start_s=[20.0, 22.0],
            challenger_start_s=[30.0],
            measure_s=[4.0, 6.0, 5.0],
            gate_s=1.0,
        ),
        Split(
            wall_s=50.0,
            baseline_start_s=[24.0],
            challenger_start_s=[40.0, 50.0],
            measure_s=[7.0],
            gate_s=1.0,
        ),  # fmt: skip
    ]
    assert measured_phases(runs) == Phases(
        baseline_start_s=22.0, challenger_start_s=40.0, measure_s=5.5
    )
