"""Serving the king: after a crown, the king's image keeps running, sandboxed exactly as in
evaluation (``harness.runner.Sandbox``), and its endpoint is announced with ``KingServing``; the
gateway follows that event. A new king is started and healthy before the old one is stopped.

    king_to_serve(current, event)      pure: which crown should be serving after this event
    KingHost(docker, profile)          starts / swaps / stops the king's sandbox
    KingServer (Ray actor)             follows crowns in the event log, drives a KingHost
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import docker
import docker.errors
import msgspec
import ray

from actors.placement import on_head
from events.types import Event, KingCrowned, KingDethroned, KingServing
from harness.profile import Profile, get_profile
from harness.runner import LABEL, Sandbox, pull_pinned

__all__ = ["Crown", "KingHost", "KingServer", "king_to_serve"]

logger = logging.getLogger(__name__)
KING_NAME_PREFIX = "arena-king-"
_CROWN_TYPES = ["KingCrowned", "KingDethroned"]


class Crown(msgspec.Struct, frozen=True):
    hotkey: str
    image: str
    digest: str
    block: int

    @property
    def ref(self) -> str:
        return f"{self.image}@{self.digest}"


def king_to_serve(current: Crown | None, event: Event) -> Crown | None:
    """The crown that should be serving once ``event`` is applied to ``current``."""
    match event:
        case KingCrowned(hotkey=hotkey, image=image, digest=digest, block=block):
            return Crown(hotkey, image, digest, block)
        case KingDethroned(hotkey=hotkey, digest=digest) if current is not None and (
            (hotkey, digest) == (current.hotkey, current.digest)
        ):
            return None
        case _:
            return current


class KingHost:
    """Owns the one sandbox that serves organic traffic."""

    def __init__(self, client: docker.DockerClient, profile: Profile) -> None:
        self.client = client
        self.profile = profile
        self.serving: Crown | None = None
        self._box: Sandbox | None = None

    def serve(self, crown: Crown) -> KingServing:
        """Start ``crown``'s image and wait for /health; then retire the previous king."""
        image_id = pull_pinned(self.client, crown.ref, self.profile)
        box = Sandbox(self.client, image_id, self.profile, name=f"king-{crown.hotkey[:12]}")
        with contextlib.ExitStack() as undo:
            box.__enter__()
            undo.callback(box.close)
            box.wait_healthy()
            undo.pop_all()
        previous, self._box, self.serving = self._box, box, crown
        if previous is not None:
            previous.close()
        return KingServing(
            hotkey=crown.hotkey, digest=crown.digest, endpoint=box.url, since_block=crown.block
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

    def __init__(self, profile: str = "local") -> None:
        self._host = KingHost(docker.from_env(), get_profile(profile))
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
                target = king_to_serve(target, record.event)
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
