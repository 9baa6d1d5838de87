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

from harness.profile import Profile, get_profile
from harness.runner import SERVE_PORT
from rules.king import King
from serve_apps.king import KingHost, king_containers

pytestmark = [pytest.mark.docker, pytest.mark.vllm]


def crowned(ref: str, n: int) -> King:
    """The ``n``-th test king, serving the image pinned as ``ref``."""
    image, digest = ref.split("@")
    return King(
        hotkey=f"5King{n}",
        uid=n,
        digest=digest,
        image=image,
        score=1.0,
        since_block=n,
        submitted_block=n,
        eval_id=f"e{n}",
    )


def king_profile(model_dir: Path, startup_timeout_s: float) -> Profile:
    """The local profile with the tiny model's folder."""
    return msgspec.structs.replace(
        get_profile("local"), model_dir=str(model_dir), startup_timeout_s=startup_timeout_s
    )


async def test_king_is_served_from_a_sandbox_and_retired(
    docker_client: docker.DockerClient, built_images: dict[str, str], tiny_model_dir: Path
) -> None:
    # Any arena server image can be king; the baseline is the one every setup builds.
    king = crowned(built_images["baseline"], 7)
    host = KingHost(docker_client, king_profile(tiny_model_dir, 600.0), "127.0.0.1")
    try:
        serving = await host.serve(king)
        assert (serving.hotkey, serving.digest) == (king.hotkey, king.digest)
        assert serving.since_block == king.since_block == 7
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
    assert king_containers(docker_client) == {}
    with pytest.raises(httpx.ConnectError):  # the relay closed with the sandbox
        httpx.get(serving.endpoint + "/health", timeout=5)


async def test_a_new_king_takes_over_and_the_old_one_goes_with_its_relay(
    docker_client: docker.DockerClient, built_images: dict[str, str], tiny_model_dir: Path
) -> None:
    # The hang image: healthy at once, and a completion streams one chunk and then nothing.
    old, new = (crowned(built_images["adv-hang"], n) for n in (1, 2))
    host = KingHost(docker_client, king_profile(tiny_model_dir, 60.0), "127.0.0.1")
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
    assert king_containers(docker_client) == {}


async def rest(chunks: AsyncIterator[bytes]) -> bytes:
    """What is left of a stream until it ends; a connection reset ends it too."""
    try:
        return b"".join([chunk async for chunk in chunks])
    except httpx.TransportError:
        return b""
