"""The loop every deciding actor runs: fold its input events from seq 0, append what it decides.

On start the actor replays its inputs from the beginning and re-derives every decision it ever
made; appending those again is a no-op (the log drops duplicate ``(type, key)``), and a decision
lost to a crash before its append is appended now. Decisions come only from input events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from events.client import BaseLogClient
from events.log import type_name
from events.types import Event

__all__ = [
    "FoldLoop",
    "RESTART_DELAY_S",
]

log = logging.getLogger(__name__)
RESTART_DELAY_S = 5.0


class FoldLoop:
    """Folds ``types`` from the log through ``apply``; ``seq`` is the last event folded."""

    def __init__(
        self,
        log: BaseLogClient,
        types: tuple[type[Event], ...],
        apply: Callable[[Event], list[Event]],
        *,
        batch: int = 1000,
    ) -> None:
        self.log = log
        self.type_names = [type_name(t) for t in types]
        self.apply = apply
        self.batch = batch
        self.seq = 0
        self.caught_up = False

    async def step(self, timeout_s: float) -> list[Event]:
        """Fold the next batch (waiting up to ``timeout_s``); append and return its decisions."""
        records = await self.log.wait_for(self.seq, self.type_names, timeout_s, self.batch)
        decisions: list[Event] = []
        for record in records:
            decisions += self.apply(record.event)
            self.seq = record.seq
        if decisions:
            await self.log.append_async(decisions)
        if len(records) < self.batch:
            self.caught_up = True
        return decisions

    async def run(self, timeout_s: float, on_step: Callable[[], Awaitable[None]]) -> None:
        """Step forever, calling ``on_step`` after each batch or timeout."""
        while True:
            await self.step(timeout_s)
            await on_step()

    async def run_forever(
        self,
        timeout_s: float,
        on_step: Callable[[], Awaitable[None]],
        *,
        reset: Callable[[], None],
        name: str,
    ) -> None:
        """``run`` until cancelled, surviving failures (a chain or log outage).

        A failure is logged; then ``reset`` gives the actor fresh state and the fold starts over
        from seq 0, which re-derives every decision, so none is lost or made twice.
        """
        while True:
            try:
                await self.run(timeout_s, on_step)
            except Exception:
                log.exception(
                    "%s loop failed; re-folding from the log in %.0f s", name, RESTART_DELAY_S
                )
                await asyncio.sleep(RESTART_DELAY_S)
                reset()
                self.seq, self.caught_up = 0, False
