"""The interface every actor codes against to reach the event log, and its in-process variant.

:class:`LogClient` (``actors.log_client``) reaches the ``EventLogActor`` over Ray;
:class:`LocalLogClient` wraps a :class:`~events.live.LiveLog` in the same process, so pure code
and tests fold and follow events with no Ray. Both have the same methods::

    seqs = client.append([event, ...])          # idempotent: a retry returns the same seqs
    seqs = await client.append_async([...])
    for rec in client.replay(from_seq, types):  # Recorded(seq, ts, event), in seq order
    recs = await client.wait_for(after_seq, types, timeout_s)
    async for rec in client.follow("scheduler", types):   # resumes from the saved cursor
    columns, rows = client.sql("SELECT * FROM kings")
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

from events.live import LiveLog
from events.log import EventLog
from events.recorded import Recorded
from events.types import Event

__all__ = [
    "BaseLogClient",
    "LocalLogClient",
    "FOLLOW_POLL_S",
]

FOLLOW_POLL_S = 30.0


class BaseLogClient(abc.ABC):
    """What a log client offers; subclasses supply transport, :meth:`follow` is shared."""

    @abc.abstractmethod
    def append(self, events: Sequence[Event]) -> list[int]:
        """Store ``events`` as one batch; return their ``seq``s (stored ones for duplicates)."""

    @abc.abstractmethod
    async def append_async(self, events: Sequence[Event]) -> list[int]:
        """:meth:`append` for coroutines."""

    @abc.abstractmethod
    def replay(
        self, from_seq: int = 0, types: Iterable[str] | None = None, limit: int | None = None
    ) -> Iterator[Recorded]:
        """Stored events with ``seq > from_seq`` (of ``types``), in ``seq`` order."""

    @abc.abstractmethod
    async def wait_for(
        self,
        after_seq: int,
        types: Iterable[str] | None = None,
        timeout_s: float = FOLLOW_POLL_S,
        limit: int = 1000,
    ) -> list[Recorded]:
        """Events newer than ``after_seq`` as soon as any exist; ``[]`` after ``timeout_s``."""

    @abc.abstractmethod
    def sql(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """One read-only statement: ``(column names, rows)``."""

    @abc.abstractmethod
    def last_seq(self) -> int:
        """The newest stored ``seq`` (0 when empty)."""

    @abc.abstractmethod
    async def ack(self, name: str, seq: int) -> None:
        """Persist that subscriber ``name`` handled every event up to ``seq``."""

    @abc.abstractmethod
    async def cursor(self, name: str) -> int:
        """The last ``seq`` subscriber ``name`` acknowledged (0 if none)."""

    async def follow(
        self, name: str, types: Iterable[str] | None = None, batch: int = 1000
    ) -> AsyncIterator[Recorded]:
        """Every event of ``types`` after ``name``'s saved cursor, then new ones as they commit.

        Delivery is at-least-once: the cursor advances when the consumer asks for the item
        after a batch, i.e. once it has handled the whole batch. A consumer that crashes
        mid-batch sees that batch again, so handlers must be idempotent (appends are).
        """
        type_list = list(types) if types is not None else None
        after = await self.cursor(name)
        while True:
            records = await self.wait_for(after, type_list, FOLLOW_POLL_S, batch)
            for record in records:
                yield record
            if records:
                after = records[-1].seq
                await self.ack(name, after)


class LocalLogClient(BaseLogClient):
    """A log client over an in-process :class:`LiveLog` (no Ray). Use from one thread."""

    def __init__(self, log: LiveLog | EventLog) -> None:
        self.live = log if isinstance(log, LiveLog) else LiveLog(log)

    def append(self, events: Sequence[Event]) -> list[int]:
        return self.live.append(events)

    async def append_async(self, events: Sequence[Event]) -> list[int]:
        return self.live.append(events)

    def replay(
        self, from_seq: int = 0, types: Iterable[str] | None = None, limit: int | None = None
    ) -> Iterator[Recorded]:
        return self.live.log.replay(from_seq, types, limit)

    async def wait_for(
        self,
        after_seq: int,
        types: Iterable[str] | None = None,
        timeout_s: float = FOLLOW_POLL_S,
        limit: int = 1000,
    ) -> list[Recorded]:
        return await self.live.wait_for(after_seq, types, timeout_s, limit)

    def sql(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.live.log.sql(query, params)

    def last_seq(self) -> int:
        return self.live.log.last_seq()

    async def ack(self, name: str, seq: int) -> None:
        self.live.log.ack(name, seq)

    async def cursor(self, name: str) -> int:
        return self.live.log.cursor(name)
