"""The round cost model of ``bench.round`` on plain data: the two orders, the profile's scale,
and the phases read back from a round's timings."""

from __future__ import annotations

import msgspec
import pytest

from bench.round import (
    Phases,
    RunTimes,
    baseline_starts,
    cost_rows,
    measure_seconds,
    measured_phases,
    old_order_seconds,
    round_seconds,
    sn_h200_phases,
)
from harness.profile import get_profile

P = Phases(baseline_start_s=10.0, challenger_start_s=20.0, measure_s=5.0)


def test_one_round_pays_for_the_baseline_once() -> None:
    # B0 = 10 + 5, then per challenger C start 20, C 5, B 5.
    assert round_seconds(P, 1) == 45.0
    assert round_seconds(P, 6) == 15.0 + 6 * 30.0
    # Before rounds: per challenger two baseline start-ups and three measurements.
    assert old_order_seconds(P, 1) == 55.0
    assert old_order_seconds(P, 6) == 6 * 55.0


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
    stopping = round_seconds(P, 3, baseline_stays_up=False)
    assert row.round_gpu_min == pytest.approx(4 * stopping / 60 / 3)
    assert row.old_order_gpu_min == pytest.approx(4 * 55.0 / 60)
    h200x8 = get_profile("sn-h200x8")
    (wide,) = cost_rows(P, h200x8, (3,))
    assert h200x8.evaluator_num_gpus == 8 and h200x8.baseline_stays_up
    assert wide.round_gpu_min == pytest.approx(8 * round_seconds(P, 3) / 60 / 3)
    (local,) = cost_rows(P, get_profile("local"), (3,))
    assert local.round_gpu_min == 0.0  # a CPU evaluation slot holds no GPU
    assert local.round_min == wide.round_min


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


def test_phases_read_back_from_a_round_of_two() -> None:
    # Pulls 3 s, baseline up at 100 + 3 + 40; measurements of 10 s; challengers 30 s + 10 s.
    run = RunTimes(
        started_at=100.0,
        pull_s=3.0,
        baseline=[(143.0, 153.0), (193.0, 203.0), (243.0, 253.0)],
        challenger_s=[40.0, 40.0],
    )
    assert measured_phases([run]) == Phases(
        baseline_start_s=40.0, challenger_start_s=30.0, measure_s=10.0
    )


def test_baseline_start_ups_are_counted_per_run() -> None:
    names = [
        "arena-b1-round6-0-baseline-0a1b2c",
        "arena-b1-round6-0-challenger-3d4e5f",
        "arena-b1-round6-1-challenger-6a7b8c",
        "arena-b1-round6-0-baseline-9d0e1f",  # restarted after a failed health check
        "arena-b1-one6-0-baseline-2a3b4c",
    ]
    assert baseline_starts(names, "b1-round6") == 2
    assert baseline_starts(names, "b1-one6") == 1
    assert baseline_starts(names, "b1-one3") == 0
