"""Serving the king for real: its image runs in the evaluation sandbox and answers traffic."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import httpx
import msgspec
import pytest

from harness.profile import get_profile, repo_root
from harness.runner import LABEL
from rules.king import King
from serve_apps.king import KING_NAME_PREFIX, KingHost
from tests.fixtures.docker import missing_part

pytestmark = [pytest.mark.docker, pytest.mark.vllm]


def _pinned(name: str) -> str:
    images = repo_root() / ".cache" / "images.json"
    try:
        return json.loads(images.read_text())[name]
    except (FileNotFoundError, KeyError):
        missing_part(f"no pinned {name!r} image in {images}: run scripts/build_images.sh")


def _king_containers(client: docker.DockerClient) -> list[str]:
    containers = client.containers.list(all=True, filters={"label": LABEL})
    return [c.name for c in containers if c.name.startswith(KING_NAME_PREFIX)]


def test_king_is_served_from_a_sandbox_and_retired(
    docker_client: docker.DockerClient, registry_addr: str, tiny_model_dir: Path
) -> None:
    # Any arena server image can be king; the baseline is the one every setup builds.
    image, digest = _pinned("baseline").split("@")
    profile = msgspec.structs.replace(
        get_profile("local"), model_dir=str(tiny_model_dir), startup_timeout_s=600.0
    )
    host = KingHost(docker_client, profile)
    try:
        king = King(
            hotkey="5KingHotkey",
            uid=1,
            digest=digest,
            image=image,
            score=1.0,
            since_block=7,
            submitted_block=5,
            eval_id="e1",
        )
        serving = host.serve(king)
        assert (serving.hotkey, serving.digest, serving.since_block) == ("5KingHotkey", digest, 7)
        assert host.serving == king
        response = httpx.post(
            serving.endpoint + "/v1/chat/completions",
            json={
                "model": "arena-tiny",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
            },
            timeout=120,
        )
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] == 3
        assert len(_king_containers(docker_client)) == 1
    finally:
        host.stop()
    assert host.serving is None
    assert _king_containers(docker_client) == []
