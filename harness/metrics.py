"""Serving metrics with the definitions of ``vllm bench serve``.

Per request: TTFT (send to first token), ITL (gaps between successive token-bearing events),
TPOT = (latency - TTFT) / (output tokens - 1), E2E latency (send to last token); so for every
request ``latency - ttft == sum(itl)``. Per run: request and output-token throughput over the
run's wall time, counting successful requests only. Every statistic is mean, median, p90 and
p99, named ``<stat>_<metric>_ms`` like vLLM's JSON.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import msgspec

from harness.loadgen import RequestResult

__all__ = ["BenchMetrics", "compute_metrics", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), so numbers match vLLM's."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class BenchMetrics(msgspec.Struct, frozen=True, kw_only=True):
    completed: int
    failed: int
    duration_s: float
    total_output_tokens: int
    request_throughput_rps: float
    output_throughput_tps: float
    mean_ttft_ms: float
    median_ttft_ms: float
    p90_ttft_ms: float
    p99_ttft_ms: float
    mean_tpot_ms: float
    median_tpot_ms: float
    p90_tpot_ms: float
    p99_tpot_ms: float
    mean_itl_ms: float
    median_itl_ms: float
    p90_itl_ms: float
    p99_itl_ms: float
    mean_e2el_ms: float
    median_e2el_ms: float
    p90_e2el_ms: float
    p99_e2el_ms: float

    def as_dict(self) -> dict[str, float]:
        """Flat name -> float, ready for an event payload."""
        return {name: float(getattr(self, name)) for name in self.__struct_fields__}


def _stats(name: str, seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        f"mean_{name}_ms": statistics.fmean(ms) if ms else 0.0,
        f"median_{name}_ms": statistics.median(ms) if ms else 0.0,
        f"p90_{name}_ms": percentile(ms, 90),
        f"p99_{name}_ms": percentile(ms, 99),
    }


def compute_metrics(results: Sequence[RequestResult], duration_s: float) -> BenchMetrics:
    ok = [r for r in results if r.success]
    total_output = sum(r.output_len for r in ok)
    tpots = [(r.latency - r.ttft) / (r.output_len - 1) for r in ok if r.output_len > 1]
    return BenchMetrics(
        completed=len(ok),
        failed=len(results) - len(ok),
        duration_s=duration_s,
        total_output_tokens=total_output,
        request_throughput_rps=len(ok) / duration_s if duration_s > 0 else 0.0,
        output_throughput_tps=total_output / duration_s if duration_s > 0 else 0.0,
        **_stats("ttft", [r.ttft for r in ok]),
        **_stats("tpot", tpots),
        **_stats("itl", [gap for r in ok for gap in r.itl]),
        **_stats("e2el", [r.latency for r in ok]),
    )
