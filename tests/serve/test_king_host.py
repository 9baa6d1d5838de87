"""Serving the king for real: its image runs in the evaluation sandbox and answers traffic,
through the relay on the host's address."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import httpx
import msgspec
import pytest

from harness.profile import get_profile
from harness.runner import LABEL, SERVE_PORT
from rules.king import King
from serve_apps.king import KING_NAME_PREFIX, KingHost

pytestmark = [pytest.mark.docker, pytest.mark.vllm]


def king_containers(client: docker.DockerClient) -> list[str]:
    """The names of the king sandboxes on this engine."""
    containers = client.containers.list(all=True, filters={"label": LABEL})
    return [c.name for c in containers if c.name.startswith(KING_NAME_PREFIX)]


async def test_king_is_served_from_a_sandbox_and_retired(
    docker_client: docker.DockerClient, built_images: dict[str, str], tiny_model_dir: Path
) -> None:
    # Any arena server image can be king; the baseline is the one every setup builds.
    image, digest = built_images["baseline"].split("@")
    profile = msgspec.structs.replace(
        get_profile("local"), model_dir=str(tiny_model_dir), startup_timeout_s=600.0
    )
    host = KingHost(docker_client, profile, "127.0.0.1")
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
        serving = await host.serve(king)
        assert (serving.hotkey, serving.digest, serving.since_block) == ("5KingHotkey", digest, 7)
        assert host.serving == king
        # The relay's address, not the container's bridge address only this host reaches.
        port = httpx.URL(serving.endpoint).port
        assert serving.endpoint == f"http://127.0.0.1:{port}" and port != SERVE_PORT
        async with httpx.AsyncClient(timeout=120) as client:
            response = await client.post(
                serving.endpoint + "/v1/chat/completions",
                json={
                    "model": "arena-tiny",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 3,
                },
            )
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] == 3
        assert len(king_containers(docker_client)) == 1
    finally:
        await host.stop()
    assert host.serving is None
    assert king_containers(docker_client) == []
    with pytest.raises(httpx.ConnectError):  # the relay closed with the sandbox
        httpx.get(serving.endpoint + "/health", timeout=5)


async def test_a_new_king_takes_over_and_the_old_one_goes_with_its_relay(
    docker_client: docker.DockerClient, built_images: dict[str, str], tiny_model_dir: Path
) -> None:
    # The hang image: healthy at once, and a completion streams one chunk and then nothing.
    image, digest = built_images["adv-hang"].split("@")
    profile = msgspec.structs.replace(
        get_profile("local"), model_dir=str(tiny_model_dir), startup_timeout_s=60.0
    )
    old, new = (
        King(
            hotkey=f"5King{n}",
            uid=n,
            digest=digest,
            image=image,
            score=1.0,
            since_block=n,
            submitted_block=n,
            eval_id=f"e{n}",
        )
        for n in (1, 2)
    )
    host = KingHost(docker_client, profile, "127.0.0.1")
    try:
        first = await host.serve(old)
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream("POST", f"{first.endpoint}/v1/chat/completions") as stream:
                received = stream.aiter_raw()
                assert b"chatcmpl-hang" in await anext(received)
                second = await host.serve(new)
                # The old king's open stream ends with its relay, rather than hanging on.
                assert await asyncio.wait_for(rest(received), 10) == b""
            assert host.serving == new and second.endpoint != first.endpoint
            assert (await client.get(f"{second.endpoint}/health")).status_code == 200
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{first.endpoint}/health")
        assert len(king_containers(docker_client)) == 1
    finally:
        await host.stop()
    assert king_containers(docker_client) == []


async def rest(chunks: AsyncIterator[bytes]) -> bytes:
    """What is left of a stream until it ends; a connection reset ends it too."""
    try:
        return b"".join([chunk async for chunk in chunks])
    except httpx.TransportError:
        return b""
