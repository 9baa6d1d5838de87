"""Start, stop and inspect the validator's named, detached actors (namespace ``arena``), and
what serves organic traffic: the king's server and the gateway (a Serve app).

The actors share nothing but the event log, so they start in dependency order (the log first)
and each rebuilds its own state from it; starting an actor that already runs is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import ray

from actors.event_log import get_or_create_event_log
from actors.placement import (
    NAMESPACE,
    actor_name,
    check_head,
    king_server_options,
    service_options,
)
from actors.validator_config import ValidatorConfig

__all__ = [
    "ALL_ROLES",
    "GATEWAY_APP",
    "ROLES",
    "SERVING_ROLES",
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
# Organic traffic: the king's server (an actor) and the gateway (the Serve app GATEWAY_APP).
SERVING_ROLES = ("king_server", "gateway")
ALL_ROLES = (*ROLES, *SERVING_ROLES)
GATEWAY_APP = "gateway"
# The roles that are named actors (the gateway is a Serve app, stopped and shown through Serve).
_ACTOR_ROLES = (*ROLES, "king_server")
# Docker's own variable, where a local start set it: it travels with the actors because workers
# inherit the raylet's environment, not the caller's. Every Arena setting travels in the config.
FORWARDED_ENV = ("DOCKER_HOST",)


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
    The gateway starts only when the config has one. ``evaluator_cls`` replaces the Evaluator
    actor body (tests).
    """
    unknown = set(roles) - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; choose from {', '.join(ALL_ROLES)}")
    check_head(ray.cluster_resources())
    handles: dict[str, Any] = {"event_log": get_or_create_event_log(config.log_path)}
    if "chain_watcher" in roles:
        from actors.chain_watcher import start_chain_watcher

        handles["chain_watcher"] = start_chain_watcher(config)
    if "scheduler" in roles:
        from actors.scheduler import Scheduler

        handles["scheduler"] = _get_or_create(
            Scheduler, service_options("scheduler"), config, evaluator_cls
        )
    if "crown_keeper" in roles:
        from actors.crown_keeper import CrownKeeper

        handles["crown_keeper"] = _get_or_create(
            CrownKeeper, service_options("crown_keeper"), config
        )
    if "king_server" in roles:
        from serve_apps.king import KingServer

        # On the GPU node type, beside the evaluators (actors.placement.king_server_options).
        handles["king_server"] = _get_or_create(
            KingServer, king_server_options(config.profile), config.profile
        )
    if "gateway" in roles and config.gateway is not None:
        from ray import serve

        from serve_apps.gateway import serve_gateway

        # The gateway serves on its own listener (serve_apps.gateway): Serve's proxy stays off.
        serve.start(proxy_location="Disabled")
        serve.run(serve_gateway(config.gateway), name=GATEWAY_APP, route_prefix=None)
        handles["gateway"] = serve.get_app_handle(GATEWAY_APP)
    return handles


def _get_or_create(body: Any, options: dict[str, Any], *args: Any) -> Any:
    """The running actor ``options`` names, else one started with them (and ``args``)."""
    with contextlib.suppress(ValueError):  # ValueError: none of that name runs
        return ray.get_actor(options["name"], namespace=NAMESPACE)
    env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    forwarded = {"runtime_env": {"env_vars": env}} if env else {}
    remote = body if isinstance(body, ray.actor.ActorClass) else ray.remote(body)
    return remote.options(**options, **forwarded, get_if_exists=True).remote(*args)


def get(role: str) -> Any | None:
    """The running actor for ``role``, or None."""
    try:
        return ray.get_actor(actor_name(role), namespace=NAMESPACE)
    except ValueError:
        return None


def stop() -> list[str]:
    """Stop the gateway, then kill the actors (not restarting them); return what was running."""
    stopped = []
    if _gateway_state() != "absent":
        from ray import serve

        serve.delete(GATEWAY_APP)
        stopped.append(GATEWAY_APP)
    for role in reversed(_ACTOR_ROLES):
        handle = get(role)
        if handle is not None:
            ray.kill(handle, no_restart=True)
            stopped.append(actor_name(role))
    return stopped


def status() -> list[ActorStatus]:
    """Each role's actor state, from the GCS actor table (works without the dashboard)."""
    rows = _actor_rows()
    out = []
    for role in _ACTOR_ROLES:
        name = actor_name(role)
        row = rows.get(name)
        if row is None:
            out.append(ActorStatus(role, name, "absent", None, 0))
        else:
            out.append(
                ActorStatus(role, name, row["State"], row["Pid"] or None, row["NumRestarts"])
            )
    out.append(ActorStatus("gateway", GATEWAY_APP, _gateway_state(), None, 0))
    return out


def _gateway_state() -> str:
    """The gateway app's Serve status (RUNNING, DEPLOYING, ...), or "absent"."""
    from ray import serve

    app = serve.status().applications.get(GATEWAY_APP)  # empty while Serve never started
    return "absent" if app is None else app.status.value


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
