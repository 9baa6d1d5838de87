"""Full evaluations (B, C, B', gate, score) through ``harness.eval`` alone, no Ray: the
reference miner and the cheater, after the adversaries ran. The fast miner's full evaluation is
tests/e2e's: it must pass and beat the crown margin to be crowned there.

These run real vLLM CPU containers: the baseline twice and the challenger once per eval.
"""

from __future__ import annotations

import docker
import pytest

from harness.eval import evaluate
from harness.profile import Profile

pytestmark = [pytest.mark.docker, pytest.mark.vllm]

SEED = "0x" + "ab" * 32


def test_reference_miner_passes_with_a_score_within_noise(
    sandbox_profile: Profile, docker_client: docker.DockerClient, built_images: dict[str, str]
) -> None:
    report = evaluate(docker_client, built_images["miner-ref"], sandbox_profile, SEED)
    assert report.verdict == "pass", f"{report.reason}: {report.detail}"
    assert report.reason == "ok"
    assert report.metrics["exact_match"] == 1.0
    # The reference miner is the baseline engine: whatever it scores is measurement noise.
    assert report.score <= 2 * report.noise + 0.05, report


def test_cheater_fails_the_gate(
    sandbox_profile: Profile, docker_client: docker.DockerClient, built_images: dict[str, str]
) -> None:
    """Correct first tokens, then different ones with the engine's logprobs: re-scoring sees it."""
    report = evaluate(docker_client, built_images["cheater"], sandbox_profile, SEED)
    assert (report.verdict, report.reason) == ("fail", "off_distribution"), report.detail
    assert report.score == 0.0
