"""The ``EventLogActor``: the one process that holds the DuckDB event log.

Named ``arena.event_log`` in namespace ``arena``, detached, restarted forever. Every method is
safe to retry (appends are idempotent by ``(type, key)``; the rest only read or move a cursor
forward), so Ray retries calls that a crash interrupted. Events cross Ray as msgpack bytes.
All methods are coroutines: they run one at a time on the actor's event loop, which is what
keeps DuckDB single-threaded and lets ``wait_for`` hold many long polls cheaply.

It runs on the head node only (``actors.placement``), and a restarted actor opens only a log that
exists: one that finds no file is on the wrong node or lost its disk, and creating an empty log
there would start a second history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from actors.placement import HEAD_RESOURCE, NAMESPACE, actor_name, on_head, service_options
from events.errors import EventLogError
from events.live import LiveLog
from events.log import EventLog
from events.recorded import encode_recorded
from events.types import decode_msgpack

__all__ = [
    "ACTOR_NAME",
    "NAMESPACE",
    "EventLogActor",
    "LogNotHereError",
    "get_or_create_event_log",
]

ACTOR_NAME = actor_name("event_log")
# A restarted actor may start before the kernel has released its killed predecessor's lock.
_LOCK_WAIT_S = 60.0


class LogNotHereError(EventLogError, FileNotFoundError):
    """A restarted log actor found no log file where it runs."""


@ray.remote(max_restarts=-1, max_task_retries=-1, **on_head())
class EventLogActor:
    """Wraps :class:`LiveLog`; see :class:`actors.log_client.LogClient` for the caller side."""

    def __init__(self, path: str) -> None:
        self._path = str(Path(path).resolve())
        context = ray.get_runtime_context()
        if context.was_current_actor_reconstructed and not Path(self._path).exists():
            raise LogNotHereError(
                f"{ACTOR_NAME} restarted on node {context.get_node_id()} and finds no log at "
                f"{self._path}; it creates a log only on its first start. Run the log actor "
                f"where the log lives (the head: the node with the {HEAD_RESOURCE} resource) "
                "or put the file back there, then start it again (arena validator start)"
            )
        self._live = LiveLog(EventLog(self._path, lock_wait_s=_LOCK_WAIT_S))

    async def path(self) -> str:
        return self._path

    async def append(self, data: bytes) -> list[int]:
        """Append msgpack-encoded events (``events.types.encode_msgpack``) as one batch."""
        return self._live.append(decode_msgpack(data))

    async def replay(self, from_seq: int, types: list[str] | None, limit: int) -> bytes:
        """Up to ``limit`` stored events after ``from_seq``, as ``encode_recorded`` bytes."""
        return encode_recorded(list(self._live.log.replay(from_seq, types, limit)))

    async def wait_for(
        self, after_seq: int, types: list[str] | None, timeout_s: float, limit: int
    ) -> bytes:
        """Long poll: events newer than ``after_seq`` as soon as any exist (empty on timeout)."""
        return encode_recorded(await self._live.wait_for(after_seq, types, timeout_s, limit))

    async def sql(
        self, query: str, params: list[Any] | dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self._live.log.sql(query, params)

    async def last_seq(self) -> int:
        return self._live.log.last_seq()

    async def ack(self, name: str, seq: int) -> None:
        self._live.log.ack(name, seq)

    async def cursor(self, name: str) -> int:
        return self._live.log.cursor(name)


def get_or_create_event_log(path: str | Path) -> ray.actor.ActorHandle:
    """The running ``arena.event_log`` actor, started on ``path`` if none runs yet.

    Raises ``ValueError`` if one already runs on a different file.
    """
    wanted = str(Path(path).resolve())
    actor = EventLogActor.options(**service_options("event_log"), get_if_exists=True).remote(wanted)
    running = ray.get(actor.path.remote())
    if running != wanted:
        raise ValueError(
            f"{ACTOR_NAME} already runs on {running}, not {wanted}; use that file or "
            f"ray.kill the actor first"
        )
    return actor
