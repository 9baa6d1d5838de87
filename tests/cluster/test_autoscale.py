"""Scale from zero: a queued evaluator makes Ray's autoscaler start cluster.yaml's GPU node type.

Ray's fake multi-node provider stands in for the cloud: it starts each node the autoscaler asks
for as another raylet on this machine, with the node type's resources from cluster.yaml.
Scaling back down when idle is not tested here: with every fake node on 127.0.0.1, Ray 2.60's
autoscaler (v1) cannot tell the nodes' load apart and never sees the new node idle, and the v2
autoscaler needs ``fake_multi_node/example.yaml``, which the Ray wheel does not ship.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import yaml

from actors.placement import evaluator_options
from chain.chopsticks import free_port
from harness.profile import get_profile
from tests.cluster.placed import Placed
from tests.fixtures.ray import private_cluster

pytestmark = pytest.mark.ray

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"
FAKE_HEAD_TYPE = "ray.head.default"  # the fake provider's name for the head
NO_COMMANDS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
    "cluster_synced_files",
)


def fake_autoscaling_config(gcs_address: str) -> dict:
    """cluster.yaml's node types and limits, on the fake provider (no machines, no commands)."""
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    types = config["available_node_types"]
    types[FAKE_HEAD_TYPE] = types.pop(config["head_node_type"])
    for node_type in types.values():
        node_type["node_config"] = {}
    config.update({command: [] for command in NO_COMMANDS})
    config.update(
        head_node_type=FAKE_HEAD_TYPE,
        file_mounts={},
        provider={
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "disable_launch_config_check": True,
            "disable_node_updaters": True,
        },
    )
    return config


def kill_leftovers(session_dir: str) -> None:
    """Kill what the fake provider started in this session: it does not stop its own nodes."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if session_dir.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)


@pytest.fixture(scope="module")
def autoscaling_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    port = free_port()
    path = tmp_path_factory.mktemp("autoscale") / "cluster.json"
    config = fake_autoscaling_config(f"127.0.0.1:{port}")
    path.write_text(json.dumps(config))
    env = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    session_dir = ""
    try:
        with private_cluster(env, gcs_server_port=port, autoscaling_config=str(path)) as c:
            session_dir = c.head_node.get_session_dir_path()
            yield config
    finally:
        if session_dir:
            kill_leftovers(session_dir)


def test_a_queued_evaluator_starts_the_gpu_node_type(autoscaling_head: dict) -> None:
    assert [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")] == []
    evaluator = ray.remote(Placed).options(**evaluator_options(get_profile("sn-h200"))).remote()
    node_id = ray.get(evaluator.node_id.remote(), timeout=120)
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    wanted = autoscaling_head["available_node_types"]["gpu_4xh200"]["resources"]
    assert {k: node["Resources"].get(k) for k in wanted} == wanted
    ray.kill(evaluator)
