"""The harness against real vLLM CPU servers: honest engines pass, every cheat is caught."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import msgspec
import pytest

from harness import gate
from harness.measure import measure
from harness.measurement import Measurement
from harness.plan import plan_measurement
from harness.profile import get_profile
from harness.score import score
from harness.tiny_model import OTHER_SEED
from tests.fixtures.vllm import VllmServer, start_vllm
from tests.harness.cheats import CheatProxy

pytestmark = pytest.mark.vllm

PROFILE = msgspec.structs.replace(
    get_profile("local"),
    num_prompts=4,
    warmup_requests=1,
    concurrency_levels=(1, 2),
    passes=1,
    # Long answers (about 250 ms each), so only a CPU stall that outlasts a whole answer merges
    # an honest one into one network read: at 16 tokens (about 60 ms) a CI run once read most
    # of the honest baseline's answers in one piece.
    output_tokens=64,
    # Short, so the hanging cheat costs seconds; honest vLLM never pauses mid-stream this long.
    stall_timeout_s=5.0,
)
SEED = "0x" + "ab" * 32
MEASURE_ATTEMPTS = 3


def _measure(url: str) -> Measurement:
    plan = plan_measurement(SEED, 0, PROFILE)
    return asyncio.run(measure(url, PROFILE, plan))


def _check(baseline: Measurement, challenger: Measurement, server: VllmServer) -> gate.GateVerdict:
    """Judge against ``server``. While the gate cannot (``InconclusiveError``: a starved client
    or node), measure both again, as the validator runs an eval again after a validator fault."""

    def judge(base: Measurement, chal: Measurement) -> gate.GateVerdict:
        return asyncio.run(gate.check(base, chal, rescore_url=server.url, profile=PROFILE))

    for _ in range(MEASURE_ATTEMPTS - 1):
        try:
            return judge(baseline, challenger)
        except gate.InconclusiveError:
            baseline, challenger = _measure(server.url), _measure(challenger.url)
    return judge(baseline, challenger)


@pytest.fixture(scope="module")
def baseline(vllm_server: VllmServer) -> Measurement:
    return _measure(vllm_server.url)


@pytest.fixture(scope="module")
def other_servers() -> Iterator[dict[str, VllmServer]]:
    """A vLLM serving a different tiny model and one in compiled (non-eager) mode, started side
    by side once the timing-sensitive tests are done (compiling loads both cores for minutes)."""
    with ThreadPoolExecutor(2) as pool:
        futures = {
            "other_model": pool.submit(start_vllm, seed=OTHER_SEED),
            "compiled": pool.submit(start_vllm, eager=False),
        }
    servers = {name: future.result() for name, future in futures.items() if not future.exception()}
    try:
        for future in futures.values():
            future.result()  # re-raise a startup failure now that both have settled
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def test_vllm_passes_against_itself_and_metrics_are_consistent(
    vllm_server: VllmServer, baseline: Measurement
):
    again = _measure(vllm_server.url)
    verdict = _check(baseline, again, vllm_server)
    assert verdict.passed, verdict
    assert verdict.exact_match == 1.0
    for level in again.levels:
        assert level.metrics.completed == PROFILE.num_prompts
        for result in level.results:
            assert result.output_len == PROFILE.output_tokens
            assert math.isclose(result.latency - result.ttft, sum(result.itl), abs_tol=1e-9)
            assert result.arrivals == sorted(result.arrivals)
    result = score(baseline, again, baseline, verdict)
    assert result.gate_passed
    assert result.noise == 0.0  # the same measurement twice carries no noise


def test_same_seed_gives_identical_prompts_outputs_and_verdicts(
    vllm_server: VllmServer, baseline: Measurement, tiny_model_dir
):
    with CheatProxy(vllm_server.url, "garbage", tiny_model_dir) as proxy:
        first = _check(baseline, _measure(proxy.url), vllm_server)
        second = _check(baseline, _measure(proxy.url), vllm_server)
    assert first == second
    assert first.reason == "off_distribution"
    again = _measure(vllm_server.url)
    assert again.levels[0].prompts == baseline.levels[0].prompts
    assert [r.token_ids for r in again.levels[0].results] == [
        r.token_ids for r in baseline.levels[0].results
    ]


@pytest.mark.parametrize(
    ("cheat", "reason"),
    [
        ("garbage", "off_distribution"),
        ("buffer", "buffered_stream"),
        ("fake_logprobs", "fabricated_logprobs"),
        ("malformed", "malformed_stream"),
        ("hang", "hang"),
        ("truncate", "truncated"),
        ("too_many", "too_many_tokens"),
    ],
)
def test_cheating_proxies_are_disqualified_with_the_right_reason(
    vllm_server: VllmServer, baseline: Measurement, tiny_model_dir, cheat: str, reason: str
):
    with CheatProxy(vllm_server.url, cheat, tiny_model_dir) as proxy:
        challenger = _measure(proxy.url)
        verdict = _check(baseline, challenger, vllm_server)
    assert (verdict.passed, verdict.reason) == (False, reason), verdict.details
    assert score(baseline, challenger, None, verdict).score == 0.0


def test_a_different_model_is_disqualified(
    vllm_server: VllmServer,
    baseline: Measurement,
    other_servers: dict[str, VllmServer],
):
    challenger = _measure(other_servers["other_model"].url)
    verdict = _check(baseline, challenger, vllm_server)
    assert (verdict.passed, verdict.reason) == (False, "off_distribution"), verdict.details


def test_vllm_in_compiled_mode_passes(
    vllm_server: VllmServer,
    baseline: Measurement,
    other_servers: dict[str, VllmServer],
):
    challenger = _measure(other_servers["compiled"].url)
    verdict = _check(baseline, challenger, vllm_server)
    assert verdict.passed, verdict.details
