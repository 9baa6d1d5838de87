"""Organic traffic reaches the king across nodes.

The king's server runs on the (fake 4xH200) eval node, its king's container sits there on an
internal Docker network, and a request sent from the head reaches the container at the endpoint
announced in ``KingServing``: the relay on the eval node's address. Both raylets run on this
machine, so that address is this host's too; what is checked is that the endpoint is the node's
address and the relay's port, never the container's bridge address, which only its own host
reaches. The king is the hang image: healthy at once, and a completion streams one chunk and then
nothing, so its chunk arriving shows the relay passes a stream on before it ends.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import docker
import httpx
import pytest
import ray

from actors.event_log import get_or_create_event_log
from actors.log_client import LogClient
from actors.placement import actor_name, king_server_options, on_head
from events.types import KingServing
from harness.runner import SERVE_PORT
from serve_apps.king import KingHost, KingServer, king_containers
from tests.cluster.placed import actor_rows, node_of
from tests.fixtures.ray import TwoNodes, clear_arena_actors
from tests.serve.test_king_host import crowned, king_profile
from tests.validator.test_actors import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.docker]

KING_SERVER = actor_name("king_server")
T = TypeVar("T")


def first_chunk(endpoint: str) -> tuple[int, bytes]:
    """A streamed completion's status and first chunk (run on the head, as the gateway is)."""
    body = {"model": "arena-tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{endpoint}/v1/chat/completions", json=body) as response,
    ):
        return response.status_code, next(response.iter_raw())


def refused(endpoint: str) -> bool:
    """Whether nothing listens at ``endpoint`` any more (run on the head)."""
    try:
        httpx.get(f"{endpoint}/health", timeout=5)
    except httpx.ConnectError:
        return True
    return False


def on_the_head(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a task on the head node, where the gateway runs."""
    return ray.get(ray.remote(fn).options(**on_head()).remote(*args), timeout=60)


@pytest.fixture(scope="module")
def log(two_nodes: TwoNodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogClient]:
    clear_arena_actors()
    actor = get_or_create_event_log(tmp_path_factory.mktemp("king_across") / "events.duckdb")
    try:
        yield LogClient(actor, retry_s=120)
    finally:
        clear_arena_actors()


def announced(log: LogClient, after: int) -> KingServing | None:
    serving = [r.event for r in log.replay(after, ["KingServing"])]
    return serving[-1] if serving else None


def test_the_kings_traffic_crosses_nodes(
    two_nodes: TwoNodes,
    log: LogClient,
    docker_client: docker.DockerClient,
    built_images: dict[str, str],
    tiny_model_dir: Path,
) -> None:
    king, profile = crowned(built_images["adv-hang"], 3), king_profile(tiny_model_dir, 60.0)
    server = KingServer.options(**king_server_options(profile)).remote(profile)
    try:
        ray.get(server.start.remote(), timeout=120)
        assert node_of(KING_SERVER) == two_nodes.eval_id
        after = log.last_seq()
        log.append([king.crowned(None)])
        serving = wait_until("the king served", lambda: announced(log, after), 120)

        eval_ip = next(
            n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == two_nodes.eval_id
        )
        (container,) = (docker_client.containers.get(c) for c in king_containers(docker_client))
        bridge_ip = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        endpoint = urlsplit(serving.endpoint)
        assert (endpoint.scheme, endpoint.hostname) == ("http", eval_ip)
        assert endpoint.port != SERVE_PORT and bridge_ip not in serving.endpoint

        status, chunk = on_the_head(first_chunk, serving.endpoint)
        assert status == 200 and b"chatcmpl-hang" in chunk

        # A restarted server starts the king again, behind a new relay on the same node.
        os.kill(actor_rows()[KING_SERVER]["Pid"], signal.SIGKILL)
        again = wait_until(
            "the king served again",
            lambda: (e := announced(log, after)) and e.endpoint != serving.endpoint and e,
            120,
        )
        assert node_of(KING_SERVER) == two_nodes.eval_id
        assert urlsplit(again.endpoint).hostname == eval_ip
        assert on_the_head(first_chunk, again.endpoint)[0] == 200

        # A dethroned king's relay closes with its sandbox.
        log.append([king.dethroned("e-dethrone", "organic_mismatch")])
        wait_until("the relay closed", lambda: on_the_head(refused, again.endpoint), 60)
        wait_until("the sandbox removed", lambda: not king_containers(docker_client), 60)
    finally:
        ray.kill(server, no_restart=True)
        KingHost(docker_client, profile, "").remove_stale()
