"""Metric definitions on plain data (the vllm bench serve definitions), and which pass counts."""

import pytest

from harness.loadgen import RequestResult
from harness.measurement import LevelRun, least_disturbed
from harness.metrics import compute_metrics, percentile
from harness.prompts import Prompt


def _result(index: int, ttft: float, itl: list[float], success: bool = True) -> RequestResult:
    return RequestResult(
        prompt_index=index,
        success=success,
        error="" if success else "stall: test",
        ttft=ttft,
        itl=itl,
        latency=ttft + sum(itl),
        token_ids=list(range(len(itl) + 1)),
    )


def test_percentile_interpolates_like_numpy():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20], 90) == pytest.approx(19.0)
    assert percentile([], 99) == 0.0


def test_metrics_follow_vllm_bench_definitions():
    results = [
        _result(0, 0.1, [0.01, 0.02, 0.03]),
        _result(1, 0.3, [0.05]),
        _result(2, 9.9, [9.9], success=False),
    ]
    m = compute_metrics(results, duration_s=2.0)
    assert (m.completed, m.failed, m.total_output_tokens) == (2, 1, 6)
    assert m.request_throughput_rps == 1.0
    assert m.output_throughput_tps == 3.0
    assert m.median_ttft_ms == pytest.approx(200.0)
    # TPOT = (latency - ttft) / (n - 1): 60 ms / 3 and 50 ms / 1
    assert m.mean_tpot_ms == pytest.approx((20.0 + 50.0) / 2)
    assert m.mean_itl_ms == pytest.approx((10 + 20 + 30 + 50) / 4)
    assert m.p99_e2el_ms == pytest.approx(percentile([160.0, 350.0], 99))
    flat = m.as_dict()
    assert flat["median_ttft_ms"] == m.median_ttft_ms
    assert all(isinstance(v, float) for v in flat.values())


def _pass(duration_s: float, ok: bool = True) -> LevelRun:
    results = [_result(0, 0.01, [0.002, 0.002]), _result(1, 0.01, [0.002], success=ok)]
    prompts = [Prompt(i, f"p{i}", 2) for i in range(2)]
    return LevelRun.of(2, prompts, results, duration_s)


def test_the_shortest_pass_counts_when_none_failed():
    passes = [_pass(3.0), _pass(1.5), _pass(2.0)]
    assert least_disturbed(passes) is passes[1]


def test_a_pass_with_a_failed_request_always_counts():
    passes = [_pass(1.0), _pass(4.0, ok=False), _pass(2.0)]
    assert least_disturbed(passes) is passes[1]
