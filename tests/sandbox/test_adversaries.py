"""Hostile or broken challengers are each stopped with their own reason, and leave nothing behind.

Each adversary (images/adversarial/miners.py) goes through ``run_challenger``, the exact code
the full eval runs for the challenger phase (sandbox, /health wait, probe, measurement).
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from harness.eval import Disqualified, run_challenger
from harness.plan import plan_measurement
from harness.profile import Profile
from harness.runner import OWNER_LABEL, owner_id, pull_pinned
from harness.sandbox_errors import SandboxError

pytestmark = pytest.mark.docker

ADVERSARIES = {
    "adv-crash": "crash",
    "adv-unhealthy": "unhealthy",
    "adv-hang": "hang",
    "adv-network": "network",
    "adv-write-models": "write_models",
    "adv-fork-bomb": "fork_bomb",
    "adv-oom": "oom",
}


@pytest.mark.parametrize(("image", "reason"), ADVERSARIES.items())
def test_adversary_is_disqualified_with_its_reason(
    image: str,
    reason: str,
    adversary_profile: Profile,
    docker_client: docker.DockerClient,
    built_images: dict[str, str],
) -> None:
    image_id = pull_pinned(docker_client, built_images[image], adversary_profile)
    with pytest.raises((Disqualified, SandboxError)) as caught:
        plan = plan_measurement("0xseed", 0, adversary_profile)
        run_challenger(docker_client, image_id, adversary_profile, plan, name=f"test-{image}")
    assert caught.value.reason == reason, f"{caught.value}\nlogs:\n{caught.value.logs[-2000:]}"
    mine = {"label": f"{OWNER_LABEL}={owner_id()}"}
    assert not docker_client.containers.list(all=True, filters=mine)
    assert not docker_client.networks.list(filters=mine)


def test_model_dir_is_untouched(sandbox_profile: Profile) -> None:
    assert not (Path(sandbox_profile.model_dir) / "planted.txt").exists()
