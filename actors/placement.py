"""Where the validator's actors run: every Ray placement option, in one place.

The head node carries one unit of the custom resource ``arena_head`` (``cluster.yaml``'s head
type, and every local start through :func:`head_node_resources`). The services (event log,
chain watcher, scheduler, crown keeper, the king's server and the gateway's replicas) each ask
for a sliver of it, so they only ever run, and restart, on the head, where the log file lives.
Evaluators ask for the GPU node type instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.profile import Profile
from rules.errors import ArenaError

__all__ = [
    "HEAD_RESOURCE",
    "NAMESPACE",
    "NoHeadError",
    "actor_name",
    "check_head",
    "head_start_command",
    "evaluator_options",
    "head_node_resources",
    "on_head",
    "service_options",
]

NAMESPACE = "arena"
HEAD_RESOURCE = "arena_head"
# Small enough that every service fits on the head at once; a node without the resource has none.
_HEAD_SHARE = 0.001


def head_node_resources() -> dict[str, float]:
    """Custom resources the head node starts with (``ray.init(resources=...)``, ``ray start``)."""
    return {HEAD_RESOURCE: 1}


class NoHeadError(ArenaError, RuntimeError):
    """The Ray cluster has no node where the validator's services may run."""


def head_start_command() -> str:
    """How to start a head node by hand, for error messages."""
    return f"ray start --head --resources='{json.dumps(head_node_resources())}'"


def check_head(cluster_resources: Mapping[str, float]) -> None:
    """Raise :class:`NoHeadError` unless a node carries the head resource.

    Without one the services' requests pend forever, without an error (``ray.cluster_resources()``
    is what to pass).
    """
    if cluster_resources.get(HEAD_RESOURCE, 0) < _HEAD_SHARE:
        raise NoHeadError(
            f"no node of this Ray cluster carries the {HEAD_RESOURCE!r} resource, so the "
            "validator's actors could never start: start the head with "
            f"`{head_start_command()}`, or use cluster.yaml, whose head type has it"
        )


def on_head() -> dict[str, Any]:
    """Options that pin an actor (or a Serve replica's ``ray_actor_options``) to the head node.

    No CPU: the services mostly wait, and a 2-core machine must still fit them all.
    """
    return {"num_cpus": 0, "resources": {HEAD_RESOURCE: _HEAD_SHARE}}


def actor_name(role: str) -> str:
    """Ray name of a validator actor, e.g. ``arena.scheduler``."""
    return f"arena.{role}"


def service_options(role: str) -> dict[str, Any]:
    """A long-lived head-node actor: detached, named, restarted forever."""
    return {
        "name": actor_name(role),
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": -1,
        **on_head(),
    }


def evaluator_options(profile: Profile) -> dict[str, Any]:
    """One evaluation slot: 4 GPUs of the H200 type in production, a custom resource locally.

    A request no node can satisfy pends; on a cluster that is what makes the autoscaler start a
    GPU worker.
    """
    opts: dict[str, Any] = {"num_cpus": 0, "num_gpus": profile.evaluator_num_gpus}
    if profile.evaluator_resources:
        opts["resources"] = dict(profile.evaluator_resources)
    if profile.accelerator_type:
        opts["accelerator_type"] = profile.accelerator_type
    return opts
