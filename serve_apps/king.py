"""Serving the king: after a crown, the king's image keeps running, sandboxed exactly as in
evaluation (``harness.runner.Sandbox``), on the node type evaluators use
(``actors.placement.king_server_options``). The sandbox's network is internal, so a relay on the
node's own address (``serve_apps.king_relay``) carries the gateway's connections from the head to
it, and that relay's endpoint is announced with ``KingServing``; the gateway follows that event.
A new king is started and healthy before the old one is stopped.

    rules.king.follow_crown                  pure: which king should be serving after a crown
    KingHost(docker, profile, listen_host)   starts / swaps / stops the king's sandbox and relay
    KingServer (Ray actor)                   follows crowns in the event log, drives a KingHost
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import docker
import docker.errors
import ray

from events.types import KingServing
from harness.profile import Profile
from harness.runner import LABEL, SERVE_PORT, Sandbox, pull_pinned, sandboxes
from rules.king import King, follow_crown
from serve_apps.king_relay import Relay

__all__ = [
    "KING_NAME_PREFIX",
    "KingHost",
    "KingServer",
    "king_containers",
]

logger = logging.getLogger(__name__)
KING_NAME_PREFIX = "arena-king-"
_CROWN_TYPES = ["KingCrowned", "KingDethroned"]


class KingHost:
    """Owns the one sandbox that serves organic traffic, and the relay that reaches it.

    ``listen_host`` is the address other nodes reach this one at (the relay listens there).
    """

    def __init__(self, client: docker.DockerClient, profile: Profile, listen_host: str) -> None:
        self.client = client
        self.profile = profile
        self.listen_host = listen_host
        self.serving: King | None = None
        self._current: tuple[Sandbox, Relay] | None = None

    async def serve(self, king: King) -> KingServing:
        """Start ``king``'s image, wait for /health and open its relay; then retire the old king."""
        box = await asyncio.to_thread(self._start, king)
        try:
            relay = await Relay.open(self.listen_host, box.ip, SERVE_PORT)
        except BaseException:
            await asyncio.to_thread(box.close)
            raise
        previous, self._current, self.serving = self._current, (box, relay), king
        if previous is not None:
            await _retire(*previous)
        return KingServing(
            hotkey=king.hotkey,
            digest=king.digest,
            endpoint=relay.endpoint,
            since_block=king.since_block,
        )

    def _start(self, king: King) -> Sandbox:
        image_id = pull_pinned(self.client, king.ref, self.profile)
        box = Sandbox(self.client, image_id, self.profile, name=f"king-{king.hotkey[:12]}")
        with contextlib.ExitStack() as undo:
            box.__enter__()
            undo.callback(box.close)
            box.wait_healthy()
            undo.pop_all()
        return box

    async def stop(self) -> None:
        if self._current is not None:
            await _retire(*self._current)
        self._current, self.serving = None, None

    def remove_stale(self) -> int:
        """Remove king sandboxes left by a previous, crashed host (not evaluation sandboxes)."""
        removed = 0
        for container_id in king_containers(self.client).values():
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(container_id, force=True)
                removed += 1
        for network in self.client.networks.list(filters={"label": LABEL}):
            if network.name.startswith(KING_NAME_PREFIX):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    network.remove()
        return removed


def king_containers(client: docker.DockerClient) -> dict[str, str]:
    """Name -> id of every king sandbox on this engine, running or not."""
    return {box.name: box.id for box in sandboxes(client) if box.name.startswith(KING_NAME_PREFIX)}


async def _retire(box: Sandbox, relay: Relay) -> None:
    """The relay first, so no new connection reaches a container that is going away."""
    await relay.close()
    await asyncio.to_thread(box.close)


@ray.remote(max_restarts=-1, num_cpus=0)
class KingServer:
    """Keeps the current king serving: folds crowns from the log, then follows new ones.

    Start it with ``actors.placement.king_server_options(profile)``: on a GPU node, where the
    king's container gets its GPUs. A restart re-folds the whole log and starts the king again
    in a fresh sandbox, behind a fresh relay (a new endpoint).
    """

    def __init__(self, profile: Profile) -> None:
        # Resolved once by whoever starts it (the supervisor, a test), shipped as data.
        self._host = KingHost(docker.from_env(), profile, ray.util.get_node_ip_address())
        # Started here rather than by a call, so a server Ray restarts (its process killed, its
        # node lost) serves again without anyone asking.
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def start(self) -> None:
        """Follow crowns again if the loop has ended (it starts with the actor)."""
        if self._task.done():
            self._task = asyncio.create_task(self._run())

    async def serving(self) -> str | None:
        """The hotkey being served, if any."""
        return self._host.serving.hotkey if self._host.serving else None

    async def _run(self) -> None:
        from actors.log_client import LogClient

        log = LogClient()
        await asyncio.to_thread(self._host.remove_stale)
        target, after = None, 0
        while True:
            records = await log.wait_for(after, _CROWN_TYPES, timeout_s=30.0)
            for record in records:
                target = follow_crown(target, record.event)
            if records:
                after = records[-1].seq
            if target == self._host.serving:
                continue
            if target is None:
                await self._host.stop()
                continue
            try:
                serving = await self._host.serve(target)
            except Exception:
                # The previous king (if any) keeps serving; the next crown event retries.
                logger.exception("could not start the king %s", target.ref)
                continue
            await log.append_async([serving])
