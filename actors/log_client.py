"""``LogClient``: how every actor reaches the ``EventLogActor``.

Calls that fail because the log actor is restarting (``ActorUnavailableError``, or
``RayActorError`` while Ray brings it back) are retried until ``retry_s`` runs out: appends
are idempotent by ``(type, key)``, so a retry of a batch that did commit returns the same seqs.
``LocalLogClient`` is the same interface in-process, without Ray (for pure code and tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError

from actors.event_log import ACTOR_NAME, NAMESPACE
from events.client import FOLLOW_POLL_S, BaseLogClient, LocalLogClient
from events.errors import EventLogError
from events.recorded import Recorded, decode_recorded
from events.types import Event, encode_msgpack

__all__ = ["LocalLogClient", "LogClient", "LogUnavailableError"]

_REPLAY_PAGE = 10_000
_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)


class LogUnavailableError(EventLogError, RuntimeError):
    """Raised when the log actor stayed unreachable for the client's whole ``retry_s``."""


class LogClient(BaseLogClient):
    """Reaches the ``arena.event_log`` actor; see :mod:`events.client` for the methods."""

    def __init__(self, actor: ray.actor.ActorHandle | None = None, retry_s: float = 120.0):
        self._actor = actor or ray.get_actor(ACTOR_NAME, namespace=NAMESPACE)
        self._retry_s = retry_s

    def _call(self, method: str, *args: Any) -> Any:
        deadline = time.monotonic() + self._retry_s
        attempt = 0
        while True:
            try:
                return ray.get(getattr(self._actor, method).remote(*args))
            except RayActorError as exc:
                self._check_deadline(method, deadline, exc)
                time.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
                attempt += 1

    async def _call_async(self, method: str, *args: Any) -> Any:
        deadline = time.monotonic() + self._retry_s
        attempt = 0
        while True:
            try:
                return await getattr(self._actor, method).remote(*args)
            except RayActorError as exc:
                self._check_deadline(method, deadline, exc)
                await asyncio.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
                attempt += 1

    def _check_deadline(self, method: str, deadline: float, exc: RayActorError) -> None:
        if time.monotonic() >= deadline:
            raise LogUnavailableError(
                f"{ACTOR_NAME}.{method} failed for {self._retry_s:.0f} s: {exc}. "
                "Is the actor running? (`ray list actors --filter name={ACTOR_NAME}`)"
            ) from exc

    def append(self, events: Sequence[Event]) -> list[int]:
        return self._call("append", encode_msgpack(list(events))) if events else []

    async def append_async(self, events: Sequence[Event]) -> list[int]:
        if not events:
            return []
        return await self._call_async("append", encode_msgpack(list(events)))

    def replay(
        self, from_seq: int = 0, types: Iterable[str] | None = None, limit: int | None = None
    ) -> Iterator[Recorded]:
        type_list = list(types) if types is not None else None
        remaining = limit if limit is not None else float("inf")
        after = from_seq
        while remaining > 0:
            page = int(min(_REPLAY_PAGE, remaining))
            records = decode_recorded(self._call("replay", after, type_list, page))
            yield from records
            if len(records) < page:
                return
            remaining -= len(records)
            after = records[-1].seq

    async def wait_for(
        self,
        after_seq: int,
        types: Iterable[str] | None = None,
        timeout_s: float = FOLLOW_POLL_S,
        limit: int = 1000,
    ) -> list[Recorded]:
        type_list = list(types) if types is not None else None
        data = await self._call_async("wait_for", after_seq, type_list, timeout_s, limit)
        return decode_recorded(data)

    def sql(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self._call("sql", query, params)

    def last_seq(self) -> int:
        return self._call("last_seq")

    def path(self) -> str:
        """The event log's file on the node the log actor runs on."""
        return self._call("path")

    async def ack(self, name: str, seq: int) -> None:
        await self._call_async("ack", name, seq)

    async def cursor(self, name: str) -> int:
        return await self._call_async("cursor", name)
