"""Start, stop and inspect the validator's named, detached actors (namespace ``arena``).

The actors share nothing but the event log, so they start in dependency order (the log first)
and each rebuilds its own state from it; starting an actor that already runs is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import ray

from actors.event_log import get_or_create_event_log
from actors.placement import NAMESPACE, actor_name, check_head, service_options
from actors.validator_config import ValidatorConfig

__all__ = [
    "ROLES",
    "ActorStatus",
    "get",
    "pid_of",
    "start",
    "status",
    "stop",
    "FORWARDED_ENV",
]

# Start order; stop goes the other way so nothing writes to a log that is gone.
ROLES = ("event_log", "chain_watcher", "scheduler", "crown_keeper")
# Settings the actors (and the evaluators they start) read from the environment; they travel
# with the actors because workers inherit the raylet's environment, not the caller's.
FORWARDED_ENV = (
    "DOCKER_HOST",
    "ARENA_BASELINE_IMAGE",
    "ARENA_MODEL_DIR",
    "ARENA_MODEL_MANIFEST",
    "ARENA_REGISTRY_ADDR",
)


@dataclass(frozen=True)
class ActorStatus:
    role: str
    name: str
    state: str  # ALIVE, RESTARTING, DEAD, PENDING_CREATION, ... or "absent"
    pid: int | None
    restarts: int


def start(
    config: ValidatorConfig,
    *,
    roles: tuple[str, ...] = ROLES,
    evaluator_cls: type | None = None,
) -> dict[str, Any]:
    """Start each of ``roles`` that is not running; return role -> handle.

    Needs ``ray.init`` done, on a cluster with a head node (``actors.placement.check_head``).
    ``evaluator_cls`` replaces the Evaluator actor body (tests).
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; choose from {', '.join(ROLES)}")
    check_head(ray.cluster_resources())
    handles: dict[str, Any] = {"event_log": get_or_create_event_log(config.log_path)}
    if "chain_watcher" in roles:
        from actors.chain_watcher import start_chain_watcher

        handles["chain_watcher"] = start_chain_watcher(config)
    if "scheduler" in roles:
        from actors.scheduler import Scheduler

        handles["scheduler"] = _get_or_create(Scheduler, "scheduler", config, evaluator_cls)
    if "crown_keeper" in roles:
        from actors.crown_keeper import CrownKeeper

        handles["crown_keeper"] = _get_or_create(CrownKeeper, "crown_keeper", config)
    return handles


def _get_or_create(body: type, role: str, *args: Any) -> Any:
    existing = get(role)
    if existing is not None:
        return existing
    options = service_options(role)
    env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    if env:
        options["runtime_env"] = {"env_vars": env}
    return ray.remote(body).options(**options, get_if_exists=True).remote(*args)


def get(role: str) -> Any | None:
    """The running actor for ``role``, or None."""
    try:
        return ray.get_actor(actor_name(role), namespace=NAMESPACE)
    except ValueError:
        return None


def stop() -> list[str]:
    """Kill the validator's actors (not restarting them); return the names that were running."""
    stopped = []
    for role in reversed(ROLES):
        handle = get(role)
        if handle is not None:
            ray.kill(handle, no_restart=True)
            stopped.append(actor_name(role))
    return stopped


def status() -> list[ActorStatus]:
    """Each role's actor state, from the GCS actor table (works without the dashboard)."""
    rows = _actor_rows()
    out = []
    for role in ROLES:
        name = actor_name(role)
        row = rows.get(name)
        if row is None:
            out.append(ActorStatus(role, name, "absent", None, 0))
        else:
            out.append(
                ActorStatus(role, name, row["State"], row["Pid"] or None, row["NumRestarts"])
            )
    return out


def pid_of(name: str) -> int | None:
    """PID of the live worker process of the actor called ``name`` (None if it is not alive)."""
    row = _actor_rows().get(name)
    return row["Pid"] if row is not None and row["State"] == "ALIVE" else None


def _actor_rows() -> dict[str, dict[str, Any]]:
    # ray.util.state needs the dashboard's API server; the GCS table is always there.
    from ray._private.state import actors

    by_name: dict[str, dict[str, Any]] = {}
    for row in actors().values():
        name = row["Name"]
        # A dead incarnation and a live one may share a name; keep the live one.
        if name and (name not in by_name or row["State"] != "DEAD"):
            by_name[name] = row
    return by_name
