"""Where the validator's actors run: every Ray placement option, in one place.

The head node carries one unit of the custom resource ``arena_head`` (``cluster.yaml``'s head
type, and every local start through :func:`head_node_resources`). The services (event log,
chain watcher, scheduler, crown keeper and the gateway's replicas) each ask for a sliver of it,
so they only ever run, and restart, on the head, where the log file lives. Evaluators ask for
the GPU node type instead, and so does the king's server, whose container needs GPUs as an
evaluation's does. Where custom resources stand in for GPUs (the ``local`` profile), a node
that runs evaluators also carries the marker ``arena_eval_node`` (:func:`eval_node_resources`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.profile import Profile
from rules.errors import ArenaError

__all__ = [
    "EVAL_NODE_RESOURCE",
    "HEAD_RESOURCE",
    "NAMESPACE",
    "NoHeadError",
    "actor_name",
    "check_head",
    "eval_node_resources",
    "evaluator_options",
    "head_node_resources",
    "head_start_command",
    "king_server_options",
    "on_head",
    "service_options",
]

NAMESPACE = "arena"
HEAD_RESOURCE = "arena_head"
EVAL_NODE_RESOURCE = "arena_eval_node"
# Small enough that every service fits on its node at once; a node without the resource has none.
_SHARE = 0.001


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
    if cluster_resources.get(HEAD_RESOURCE, 0) < _SHARE:
        raise NoHeadError(
            f"no node of this Ray cluster carries the {HEAD_RESOURCE!r} resource, so the "
            "validator's actors could never start: start the head with "
            f"`{head_start_command()}`, or use cluster.yaml, whose head type has it"
        )


def on_head() -> dict[str, Any]:
    """Options that pin an actor (or a Serve replica's ``ray_actor_options``) to the head node.

    No CPU: the services mostly wait, and a 2-core machine must still fit them all.
    """
    return {"num_cpus": 0, "resources": {HEAD_RESOURCE: _SHARE}}


def actor_name(role: str) -> str:
    """Ray name of a validator actor, e.g. ``arena.scheduler``."""
    return f"arena.{role}"


def _long_lived(role: str) -> dict[str, Any]:
    return {
        "name": actor_name(role),
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": -1,
    }


def service_options(role: str) -> dict[str, Any]:
    """A long-lived head-node actor: detached, named, restarted forever."""
    return {**_long_lived(role), **on_head()}


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


def eval_node_resources(profile: Profile) -> dict[str, float]:
    """Custom resources a node starts with to stand in for the profile's GPU node type.

    Where the profile's evaluators ask for custom resources instead of GPUs (the ``local``
    profile's ``arena_eval_slot``), that is one evaluator's worth and :data:`EVAL_NODE_RESOURCE`,
    which the king's server asks a sliver of. Where they ask for GPUs, the GPUs are the node
    type and this is empty.
    """
    if not profile.evaluator_resources:
        return {}
    return {**profile.evaluator_resources, EVAL_NODE_RESOURCE: 1}


def king_server_options(profile: Profile) -> dict[str, Any]:
    """The king's server: detached, named, restarted forever, on the node type evaluators use.

    Its container is sandboxed as an evaluation's is and needs what one of those containers
    needs: ``gpus_per_container`` GPUs of the profile's accelerator type, which Ray assigns to
    the actor and the sandbox hands to the container. Where custom resources stand in for the
    GPU node (``local``), it asks for a sliver of :data:`EVAL_NODE_RESOURCE` rather than of the
    evaluation slot, which an evaluator must still get whole beside it.
    """
    opts: dict[str, Any] = {**_long_lived("king_server"), "num_cpus": 0}
    if profile.evaluator_resources:
        opts["resources"] = {EVAL_NODE_RESOURCE: _SHARE}
        return opts
    opts["num_gpus"] = profile.gpus_per_container
    if profile.accelerator_type:
        opts["accelerator_type"] = profile.accelerator_type
    return opts
