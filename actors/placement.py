"""Where the validator's actors run, as Ray options derived from the profile."""

from __future__ import annotations

from typing import Any

from harness.profile import Profile

__all__ = ["NAMESPACE", "actor_name", "evaluator_options", "service_options"]

NAMESPACE = "arena"


def actor_name(role: str) -> str:
    """Ray name of a validator actor, e.g. ``arena.scheduler``."""
    return f"arena.{role}"


def service_options(role: str) -> dict[str, Any]:
    """A long-lived head-node actor: detached, named, restarted forever, holding no CPU."""
    return {
        "name": actor_name(role),
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": -1,
        "num_cpus": 0,
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
