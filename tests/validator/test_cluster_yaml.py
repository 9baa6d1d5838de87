"""cluster.yaml validated offline, as far as Ray allows without a cloud account."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from actors.placement import HEAD_RESOURCE, evaluator_options, service_options
from actors.ray_auth import AUTH_MODE_VAR, CLUSTER_AUTH_MODE
from harness.profile import get_profile

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    raw = yaml.safe_load(CLUSTER_YAML.read_text())
    prepared = prepare_config(raw)
    validate_config(prepared)
    return prepared


def test_head_is_a_cpu_node_that_is_always_on(config: dict) -> None:
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert head["max_workers"] == 0


def test_only_the_head_carries_the_resource_that_pins_the_services(config: dict) -> None:
    types = config["available_node_types"]
    wanted = service_options("event_log")["resources"][HEAD_RESOURCE]
    assert types[config["head_node_type"]]["resources"].get(HEAD_RESOURCE, 0) >= wanted
    assert [
        name
        for name, node in types.items()
        if HEAD_RESOURCE in node["resources"] and name != config["head_node_type"]
    ] == []


def test_gpu_workers_scale_from_zero_and_back(config: dict) -> None:
    gpu = config["available_node_types"]["gpu_4xh200"]
    assert gpu["min_workers"] == 0
    assert gpu["max_workers"] >= 1
    assert gpu["resources"]["GPU"] == 4
    assert gpu["resources"]["accelerator_type:H200"] == 1
    assert config["idle_timeout_minutes"] > 0


def _fits(config: dict, profile: str, node_type: str) -> bool:
    opts = evaluator_options(get_profile(profile))
    wanted = {"GPU": opts["num_gpus"], **opts.get("resources", {})}
    wanted[f"accelerator_type:{opts['accelerator_type']}"] = 0.001
    have = config["available_node_types"][node_type]["resources"]
    return all(have.get(name, 0) >= amount for name, amount in wanted.items())


def test_an_evaluator_fits_a_gpu_worker_and_not_the_head(config: dict) -> None:
    """The evaluator's request is what makes the autoscaler start a GPU worker."""
    assert _fits(config, "sn-h200", "gpu_4xh200")
    assert not _fits(config, "sn-h200", config["head_node_type"])


def test_an_evaluator_that_keeps_the_baseline_up_needs_the_8_gpu_worker(config: dict) -> None:
    assert _fits(config, "sn-h200x8", "gpu_8xh200")
    assert not _fits(config, "sn-h200x8", "gpu_4xh200")


def test_setup_installs_the_project(config: dict) -> None:
    assert any("pip install -e" in c for c in config["head_setup_commands"])
    assert any("[gpu]" in c for c in config["worker_setup_commands"])
    assert "." in config["file_mounts"].values()


def test_a_gpu_worker_syncs_the_weights_the_profile_checks(config: dict) -> None:
    profile = get_profile("sn-h200")
    (sync,) = [c for c in config["worker_setup_commands"] if "harness.weights sync" in c]
    words = sync.split()
    manifest = words[words.index("--manifest") + 1]
    assert words[words.index("sync") + 2] == profile.model_dir
    # Relative to ~/arena, the checkout file_mounts carries to the node (the profile's repo_root).
    assert profile.model_manifest == str(CLUSTER_YAML.parent / manifest)


def test_ray_starts_with_the_auth_mode_the_validator_commands_use(config: dict) -> None:
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    ray_starts = [c for c in starts if "ray start" in c]
    assert ray_starts
    assert all(f"{AUTH_MODE_VAR}={CLUSTER_AUTH_MODE} " in c for c in ray_starts)
