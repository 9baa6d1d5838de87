"""Expected failures are one clear line saying what to do, a non-zero exit and no traceback:
`arena eval --local` without a Docker engine or a registry, or given a bad image reference, and
`arena validator start` without a chain node. Each runs as a subprocess, the way a user meets it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import docker
import pytest

from harness.profile import repo_root
from tests.fixtures.vllm import free_port

DIGEST = "sha256:" + "a" * 64


def _arena_eval(image: str, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "eval", "--local", "--image", image, *flags],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=repo_root(),
        timeout=120,
    )


def _refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()  # one line, so no traceback
    assert line.startswith("arena eval: ")
    for word in words:
        assert word in line
    return line


def test_no_docker_engine(tmp_path) -> None:
    nowhere = f"unix://{tmp_path}/docker.sock"
    result = _arena_eval(f"127.0.0.1:5000/miner@{DIGEST}", DOCKER_HOST=nowhere)
    _refused(result, "no Docker engine answers at " + nowhere, "scripts/infra.sh start")


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("miner:latest", "images are pulled by digest only"),
        ("127.0.0.1:5000/miner@sha256:abc", "digest must be sha256 followed by 64"),
        (f"127.0.0.1:5000/Miner@{DIGEST}", "repository path component 'Miner' is invalid"),
    ],
)
def test_bad_image_reference(image: str, why: str) -> None:
    # Checked first: the engine named here is never asked.
    result = _arena_eval(image, DOCKER_HOST="unix:///nonexistent/docker.sock")
    _refused(result, "bad image reference", why)


@pytest.mark.docker
def test_no_registry(docker_client: docker.DockerClient) -> None:
    registry = f"127.0.0.1:{free_port()}"
    for flags in ((), ("--baseline-image", f"{registry}/arena/baseline@{DIGEST}")):
        image = f"{registry}/miner@{DIGEST}" if not flags else f"127.0.0.1:5000/miner@{DIGEST}"
        needed_for = image if not flags else "the baseline"
        result = _arena_eval(image, *flags)
        _refused(result, f"the registry {registry} does not answer", needed_for, "start it")


def test_no_chain() -> None:
    # `arena validator start` asks the node once before any actor (or Ray) is started.
    node = f"ws://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "validator", "start", "--netuid", "1"]
        + ["--network", node],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"arena validator start: chain_getFinalizedHead: node at {node}")
    assert line.endswith("Start it, or name another with --network.")
