"""Smoke test of the local infrastructure: each real part answers."""

from __future__ import annotations

import json

import docker
import httpx
from websocket import create_connection

SUBTENSOR_SPEC_VERSION = 218


def test_docker_engine_answers_ping(docker_client: docker.DockerClient) -> None:
    assert docker_client.ping() is True


def test_registry_answers_v2(registry_addr: str) -> None:
    response = httpx.get(f"http://{registry_addr}/v2/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_chopsticks_runs_subtensor_spec_218(chain_url: str) -> None:
    ws = create_connection(chain_url, timeout=30)
    try:
        ws.send(json.dumps({"id": 1, "jsonrpc": "2.0", "method": "state_getRuntimeVersion"}))
        version = json.loads(ws.recv())["result"]
    finally:
        ws.close()
    assert version["specName"] == "node-subtensor"
    assert version["specVersion"] == SUBTENSOR_SPEC_VERSION
