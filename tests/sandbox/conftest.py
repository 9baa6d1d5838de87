"""Fixtures for the sandbox tests: a small profile, a leftover check (the built images are
``tests.fixtures.docker``'s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import msgspec
import pytest

from harness.profile import Profile, get_profile
from harness.runner import OWNER_LABEL, owner_id


@pytest.fixture(scope="session")
def sandbox_profile(tiny_model_dir: Path, built_images: dict[str, str]) -> Profile:
    """The local profile, shrunk so each measurement takes seconds."""
    return msgspec.structs.replace(
        get_profile("local"),
        model_dir=str(tiny_model_dir),
        baseline_image=built_images["baseline"],
        num_prompts=4,
        warmup_requests=1,
        concurrency_levels=(1, 2),
        passes=1,
        input_tokens=32,
        output_tokens=16,
        startup_timeout_s=600.0,
        request_timeout_s=120.0,
    )


@pytest.fixture(scope="session")
def adversary_profile(sandbox_profile: Profile) -> Profile:
    """Tight limits, so the fork bomb, the memory eater and the sleeper are stopped quickly."""
    return msgspec.structs.replace(
        sandbox_profile,
        startup_timeout_s=15.0,
        request_timeout_s=20.0,  # above the network adversary's DNS timeout
        memory_limit="256m",
        pids_limit=64,
        cpus=1.0,
    )


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(docker_client: docker.DockerClient) -> Iterator[None]:
    """After the whole suite, no sandbox container or network this process made may remain.

    Filtered by owner: other sessions may be running evals on the same engine meanwhile.
    """
    yield
    mine = {"label": f"{OWNER_LABEL}={owner_id()}"}
    containers = docker_client.containers.list(all=True, filters=mine)
    networks = docker_client.networks.list(filters=mine)
    assert not containers and not networks, (
        f"left behind: containers {[c.name for c in containers]}, "
        f"networks {[n.name for n in networks]}"
    )
