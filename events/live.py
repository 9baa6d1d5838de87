"""An :class:`EventLog` that wakes waiting subscribers when a batch commits.

This is the whole behaviour of the ``EventLogActor`` without Ray: the actor holds one, and
:class:`events.client.LocalLogClient` holds one in-process. Use it from one event loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from events.log import EventLog
from events.recorded import Recorded
from events.types import Event

__all__ = ["LiveLog"]


class LiveLog:
    """An event log plus long-poll waits for newer events."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._appended = asyncio.Event()

    def append(self, events: Sequence[Event]) -> list[int]:
        before = self.log.last_seq()
        seqs = self.log.append(events)
        if self.log.last_seq() != before:
            # Wake every waiter, then arm a fresh event for the next batch.
            self._appended.set()
            self._appended = asyncio.Event()
        return seqs

    async def wait_for(
        self, after_seq: int, types: Iterable[str] | None, timeout_s: float, limit: int
    ) -> list[Recorded]:
        """Up to ``limit`` events newer than ``after_seq`` (of ``types``), in ``seq`` order.

        Returns as soon as at least one exists, or an empty list after ``timeout_s``. Events
        commit in ``seq`` order under one writer, so a follower that passes the last ``seq``
        it received never misses one.
        """
        type_list = list(types) if types is not None else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            appended = self._appended  # taken before reading, so no commit slips between
            if self.log.last_seq() > after_seq:
                found = list(self.log.replay(after_seq, type_list, limit))
                if found:
                    return found
                # Only other types are newer: wait for the next commit beyond them.
                after_seq = self.log.last_seq()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            try:
                await asyncio.wait_for(appended.wait(), remaining)
            except TimeoutError:
                return []
