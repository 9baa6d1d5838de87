"""Serving the king: after a crown, the king's image keeps running, sandboxed exactly as in
evaluation (``harness.runner.Sandbox``), and its endpoint is announced with ``KingServing``; the
gateway follows that event. A new king is started and healthy before the old one is stopped.

    rules.king.follow_crown            pure: which king should be serving after a crown event
    KingHost(docker, profile)          starts / swaps / stops the king's sandbox
    KingServer (Ray actor)             follows crowns in the event log, drives a KingHost
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import docker
import docker.errors
import ray

from actors.placement import on_head
from events.types import KingServing
from harness.profile import Profile
from harness.runner import LABEL, Sandbox, pull_pinned
from rules.king import King, follow_crown

__all__ = [
    "KingHost",
    "KingServer",
    "KING_NAME_PREFIX",
]

logger = logging.getLogger(__name__)
KING_NAME_PREFIX = "arena-king-"
_CROWN_TYPES = ["KingCrowned", "KingDethroned"]


class KingHost:
    """Owns the one sandbox that serves organic traffic."""

    def __init__(self, client: docker.DockerClient, profile: Profile) -> None:
        self.client = client
        self.profile = profile
        self.serving: King | None = None
        self._box: Sandbox | None = None

    def serve(self, king: King) -> KingServing:
        """Start ``king``'s image and wait for /health; then retire the previous king."""
        image_id = pull_pinned(self.client, king.ref, self.profile)
        box = Sandbox(self.client, image_id, self.profile, name=f"king-{king.hotkey[:12]}")
        with contextlib.ExitStack() as undo:
            box.__enter__()
            undo.callback(box.close)
            box.wait_healthy()
            undo.pop_all()
        previous, self._box, self.serving = self._box, box, king
        if previous is not None:
            previous.close()
        return KingServing(
            hotkey=king.hotkey, digest=king.digest, endpoint=box.url, since_block=king.since_block
        )

    def stop(self) -> None:
        if self._box is not None:
            self._box.close()
        self._box, self.serving = None, None

    def remove_stale(self) -> int:
        """Remove king sandboxes left by a previous, crashed host (not evaluation sandboxes)."""
        removed = 0
        for container in self.client.containers.list(all=True, filters={"label": LABEL}):
            if container.name.startswith(KING_NAME_PREFIX):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
                    removed += 1
        for network in self.client.networks.list(filters={"label": LABEL}):
            if network.name.startswith(KING_NAME_PREFIX):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    network.remove()
        return removed


@ray.remote(max_restarts=-1, **on_head())
class KingServer:
    """Keeps the current king serving: folds crowns from the log, then follows new ones.

    A restart re-folds the whole log and starts the king again in a fresh sandbox.
    """

    def __init__(self, profile: Profile) -> None:
        # Resolved once by whoever starts it (the supervisor, a test), shipped as data.
        self._host = KingHost(docker.from_env(), profile)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None or self._task.done():
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
                await asyncio.to_thread(self._host.stop)
                continue
            try:
                serving = await asyncio.to_thread(self._host.serve, target)
            except Exception:
                # The previous king (if any) keeps serving; the next crown event retries.
                logger.exception("could not start the king %s", target.ref)
                continue
            await log.append_async([serving])
