"""Where the validator's actors may run, as plain Ray options (actors/placement.py)."""

from __future__ import annotations

import pytest

from actors.event_log import EventLogActor
from actors.placement import (
    HEAD_RESOURCE,
    NoHeadError,
    actor_name,
    check_head,
    eval_node_resources,
    evaluator_options,
    head_node_resources,
    head_start_command,
    king_server_options,
    service_options,
)
from actors.supervisor import ROLES
from harness.profile import get_profile
from serve_apps.gateway import GatewayServer

# The GPU node type as cluster.yaml's gpu_4xh200 declares it.
GPU_NODE = {"CPU": 96, "GPU": 4, "accelerator_type:H200": 1}


def _wanted(request: dict) -> dict[str, float]:
    wanted = {"CPU": request.get("num_cpus", 1), "GPU": request.get("num_gpus", 0)}
    if request.get("accelerator_type"):
        wanted[f"accelerator_type:{request['accelerator_type']}"] = 0.001
    return {**wanted, **request.get("resources", {})}


def _fits(node: dict[str, float], *requests: dict) -> bool:
    """Whether ``requests`` fit ``node`` all at once."""
    wanted: dict[str, float] = {}
    for request in requests:
        for name, amount in _wanted(request).items():
            wanted[name] = wanted.get(name, 0) + amount
    return all(node.get(name, 0) >= amount for name, amount in wanted.items() if amount)


@pytest.mark.parametrize("role", ROLES)
def test_every_service_asks_for_the_head_and_no_cpu(role: str) -> None:
    options = service_options(role)
    assert options["num_cpus"] == 0
    assert 0 < options["resources"][HEAD_RESOURCE] <= head_node_resources()[HEAD_RESOURCE]
    assert options["lifetime"] == "detached" and options["max_restarts"] == -1


@pytest.mark.parametrize(
    "defaults",
    [
        EventLogActor._default_options,  # also when started without service_options
        GatewayServer.ray_actor_options,
    ],
    ids=["event_log", "gateway"],
)
def test_actor_classes_and_the_gateway_replica_are_pinned_to_the_head(defaults: dict) -> None:
    assert defaults["resources"] == service_options("any")["resources"]
    assert defaults["num_cpus"] == 0


def test_all_services_fit_the_head_at_once_and_none_fits_a_gpu_node() -> None:
    head = {"CPU": 0, **head_node_resources()}
    services = [service_options(role) for role in ROLES] + [service_options("gateway")]
    assert _fits(head, *services)
    assert not _fits(GPU_NODE, service_options("scheduler"))


@pytest.mark.parametrize("profile", ["local", "sn-h200"])
def test_evaluators_never_ask_for_the_head(profile: str) -> None:
    assert HEAD_RESOURCE not in evaluator_options(get_profile(profile)).get("resources", {})


def test_the_kings_server_is_a_named_detached_actor_restarted_forever() -> None:
    for profile in ("local", "sn-h200"):
        options = king_server_options(get_profile(profile))
        assert options["name"] == actor_name("king_server") and options["num_cpus"] == 0
        assert options["lifetime"] == "detached" and options["max_restarts"] == -1


@pytest.mark.parametrize("profile", ["sn-h200", "sn-h200x8"])
def test_on_gpus_the_kings_server_holds_one_containers_gpus_of_the_gpu_node(profile: str) -> None:
    options = king_server_options(get_profile(profile))
    assert (options["num_gpus"], options["accelerator_type"]) == (4, "H200")
    assert HEAD_RESOURCE not in options.get("resources", {})
    assert _fits(GPU_NODE, options)
    assert not _fits({"CPU": 8, **head_node_resources()}, options)


def test_on_local_the_kings_server_runs_beside_a_whole_evaluator_on_the_eval_node() -> None:
    local = get_profile("local")
    eval_node = {"CPU": 1, **eval_node_resources(local)}
    king, evaluator = king_server_options(local), evaluator_options(local)
    assert HEAD_RESOURCE not in king["resources"]
    # A sliver of the eval slot itself would leave an evaluator less than the whole slot.
    assert _fits(eval_node, king, evaluator)
    assert not _fits(eval_node, evaluator, evaluator)
    assert not _fits({"CPU": 8, **head_node_resources()}, king)


def test_only_custom_stand_ins_for_gpus_need_resources_on_the_eval_node() -> None:
    assert eval_node_resources(get_profile("sn-h200")) == {}


def test_a_cluster_without_a_head_is_refused_with_the_command_that_starts_one() -> None:
    with pytest.raises(NoHeadError, match="arena_head") as refused:
        check_head({"CPU": 2.0, "arena_eval_slot": 1.0})
    assert head_start_command() in str(refused.value)
    check_head({"CPU": 2.0, **head_node_resources()})
