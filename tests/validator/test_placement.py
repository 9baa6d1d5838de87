"""Where the validator's actors may run, as plain Ray options (actors/placement.py)."""

from __future__ import annotations

import pytest

from actors.event_log import EventLogActor
from actors.placement import (
    HEAD_RESOURCE,
    NoHeadError,
    check_head,
    evaluator_options,
    head_node_resources,
    head_start_command,
    service_options,
)
from actors.supervisor import ROLES
from harness.profile import get_profile
from serve_apps.gateway import GatewayServer
from serve_apps.king import KingServer


def _fits(request: dict, node: dict[str, float]) -> bool:
    wanted = {"CPU": request.get("num_cpus", 1), **request.get("resources", {})}
    return all(node.get(name, 0) >= amount for name, amount in wanted.items() if amount)


@pytest.mark.parametrize("role", [*ROLES, "king_server"])
def test_every_service_asks_for_the_head_and_no_cpu(role: str) -> None:
    options = service_options(role)
    assert options["num_cpus"] == 0
    assert 0 < options["resources"][HEAD_RESOURCE] <= head_node_resources()[HEAD_RESOURCE]
    assert options["lifetime"] == "detached" and options["max_restarts"] == -1


@pytest.mark.parametrize(
    "defaults",
    [
        EventLogActor._default_options,  # also when started without service_options
        KingServer._default_options,
        GatewayServer.ray_actor_options,
    ],
    ids=["event_log", "king_server", "gateway"],
)
def test_actor_classes_and_the_gateway_replica_are_pinned_to_the_head(defaults: dict) -> None:
    assert defaults["resources"] == service_options("any")["resources"]
    assert defaults["num_cpus"] == 0


def test_all_services_fit_the_head_at_once_and_none_fits_a_gpu_node() -> None:
    head = {"CPU": 0, **head_node_resources()}
    gpu_node = {"CPU": 96, "GPU": 4, "accelerator_type:H200": 1}
    share = service_options("any")["resources"][HEAD_RESOURCE]
    services = len(ROLES) + 2  # and the king's server and the gateway's replica
    assert services * share <= head[HEAD_RESOURCE]
    assert _fits(service_options("scheduler"), head)
    assert not _fits(service_options("scheduler"), gpu_node)


@pytest.mark.parametrize("profile", ["local", "sn-h200"])
def test_evaluators_never_ask_for_the_head(profile: str) -> None:
    assert HEAD_RESOURCE not in evaluator_options(get_profile(profile)).get("resources", {})


def test_a_cluster_without_a_head_is_refused_with_the_command_that_starts_one() -> None:
    with pytest.raises(NoHeadError, match="arena_head") as refused:
        check_head({"CPU": 2.0, "arena_eval_slot": 1.0})
    assert head_start_command() in str(refused.value)
    check_head({"CPU": 2.0, **head_node_resources()})
