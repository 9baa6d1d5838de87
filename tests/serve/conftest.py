"""Fixtures for the serve apps: Serve on the session's Ray, the reference miner (real vLLM CPU in
a Serve replica), the gateway deployed by Serve, and in-process servers for the cheap tests.

Package-scoped: Serve, its vLLM replica and the gateway stop after the last test here, so they
never hold CPU or follow a stale event log while later packages (the end-to-end run) measure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from harness.profile import get_profile
from serve_apps.gateway import GatewayConfig, serve_gateway
from serve_apps.keys import create_key
from serve_apps.miner import ReferenceMiner, miner_config
from tests.fixtures.vllm import free_port


def wait_until(condition: Any, timeout_s: float, what: str, poll_s: float = 0.2) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail naming ``what`` at the end."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


@contextmanager
def serve_in_thread(app: Any, port: int) -> Iterator[str]:
    """Run an ASGI app on 127.0.0.1:port in a background thread; stop it (lifespan included)."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 30, f"a server on port {port}")
    assert server.started, f"the server on port {port} did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="package")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "keys.json"


@pytest.fixture(scope="package")
def api_key(keys_file: Path) -> str:
    """A key with limits no test reaches."""
    return create_key(keys_file, "tests", rate_per_s=1000, burst=1000)[1]


@pytest.fixture(scope="package")
def serve_session(ray_cluster: dict) -> Iterator[None]:
    """Ray Serve without its HTTP proxy: the apps here listen on their own ports."""
    from ray import serve

    serve.start(proxy_location="Disabled")
    yield
    serve.shutdown()


@pytest.fixture(scope="package")
def event_log(ray_cluster: dict, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A LogClient on the session's ``arena.event_log`` actor (started here if none runs)."""
    import ray

    from actors.event_log import ACTOR_NAME, NAMESPACE, get_or_create_event_log
    from actors.log_client import LogClient

    try:
        actor = ray.get_actor(ACTOR_NAME, namespace=NAMESPACE)
    except ValueError:
        actor = get_or_create_event_log(tmp_path_factory.mktemp("log") / "events.duckdb")
    return LogClient(actor)


@pytest.fixture(scope="package")
def reference_miner(serve_session: None, tiny_model_dir: Path) -> Iterator[str]:
    """The reference miner deployed with Ray Serve; yields its base URL."""
    from ray import serve

    port = free_port()
    config = miner_config(get_profile("local"), model=str(tiny_model_dir), port=port)
    # Returns once the replica's constructor finished: engine loaded, listener up.
    serve.run(ReferenceMiner.bind(config), name="miner", route_prefix=None)
    url = f"http://127.0.0.1:{port}"
    yield url
    serve.delete("miner")


@pytest.fixture(scope="package")
def gateway(
    serve_session: None, reference_miner: str, event_log: Any, keys_file: Path
) -> Iterator[str]:
    """The gateway deployed with Ray Serve, following the event log; yields its base URL."""
    from ray import serve

    port = free_port()
    config = GatewayConfig(
        reference_endpoint=reference_miner,
        keys_file=str(keys_file),
        port=port,
        king_cooldown_s=2.0,
        usage_flush_s=1.0,
    )
    serve.run(serve_gateway(config), name="gateway", route_prefix=None)
    yield f"http://127.0.0.1:{port}"
    serve.delete("gateway")
