"""Which GPUs each container of a round gets, and when the baseline may stay up: plain data."""

from __future__ import annotations

import msgspec
import pytest

from harness.profile import get_profile
from harness.runner import gpu_requests


def test_the_baseline_stays_up_only_where_the_evaluator_holds_gpus_for_both() -> None:
    assert get_profile("local").baseline_stays_up  # no GPUs needed
    assert not get_profile("sn-h200").baseline_stays_up  # 4 GPUs, one 4-GPU engine at a time
    assert get_profile("sn-h200x8").baseline_stays_up
    with pytest.raises(ValueError, match="needs 8 GPUs, the evaluator holds 4"):
        msgspec.structs.replace(get_profile("sn-h200"), baseline_stays_up=True)


def test_baseline_and_challenger_take_separate_gpus_of_those_ray_gave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,4,5,6,7,0,1,2")
    (baseline,) = gpu_requests(4, 0)
    (challenger,) = gpu_requests(4, 4)
    assert baseline.device_ids == ["3", "4", "5", "6"]
    assert challenger.device_ids == ["7", "0", "1", "2"]


def test_gpus_beyond_those_ray_gave_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert gpu_requests(4, 0)[0].device_ids == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match="evaluator_num_gpus"):
        gpu_requests(4, 4)


def test_without_ray_the_node_numbers_its_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_requests(0) == []
    assert gpu_requests(4, 0)[0].count == 4  # any four: nothing else runs beside it
    assert gpu_requests(4, 4)[0].device_ids == ["4", "5", "6", "7"]


def test_a_bracket_holds_at_least_one_challenger() -> None:
    with pytest.raises(ValueError, match="challengers_per_baseline must be at least 1"):
        msgspec.structs.replace(get_profile("local"), challengers_per_baseline=0)
