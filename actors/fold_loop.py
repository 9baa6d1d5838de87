"""The loop every deciding actor runs: fold its input events from seq 0, append what it decides.

On start the actor replays its inputs from the beginning and re-derives every decision it ever
made; appending those again is a no-op (the log drops duplicate ``(type, key)``), and a decision
lost to a crash before its append is appended now. Decisions come only from input events.

Two kinds of failure, told apart because they need opposite answers:

- an **effect** failed (reading the log, appending to it, the actor's ``on_step``: the chain, the
  registry, an evaluator): only that effect is tried again, with backoff, and each failure is
  recorded as an ``EffectFailed`` event. The fold's state is kept: nothing is re-folded.
- the **decision** failed (the pure fold raised on an input event): that is a bug, and folding
  again would raise again on the same event. The loop stops with :class:`DecisionError`, naming
  the event, and logs it as critical; it never retries.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from events.client import BaseLogClient
from events.log import type_name
from events.types import EffectFailed, Event
from rules.errors import ArenaError

__all__ = ["BACKOFF_S", "DecisionError", "FoldLoop"]

log = logging.getLogger(__name__)
# Waits before each retry of a failed effect; the last one repeats for as long as it fails.
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

_T = TypeVar("_T")


class DecisionError(ArenaError):
    """The pure fold raised on an input event: a bug in the decision code, not an outage."""

    def __init__(self, name: str, seq: int, event_type: str, cause: BaseException) -> None:
        super().__init__(
            f"{name}: its fold raised on {event_type} at seq {seq}: {cause!r}; the loop stopped "
            "(folding again would raise again); fix the fold and restart the actor"
        )
        self.name, self.seq, self.event_type = name, seq, event_type


class FoldLoop:
    """Folds ``types`` from the log through ``apply``; ``seq`` is the last event folded."""

    def __init__(
        self,
        log: BaseLogClient,
        types: tuple[type[Event], ...],
        apply: Callable[[Event], list[Event]],
        *,
        name: str,
        batch: int = 1000,
        backoff_s: Sequence[float] = BACKOFF_S,
    ) -> None:
        self.log = log
        self.type_names = [type_name(t) for t in types]
        self.apply = apply
        self.name = name
        self.batch = batch
        self.backoff_s = backoff_s
        self.seq = 0
        self.caught_up = False
        # Tells this run's effect failures from an earlier run's at the same seq.
        self._run_id = uuid.uuid4().hex[:12]

    async def step(self, timeout_s: float) -> list[Event]:
        """Fold the next batch (waiting up to ``timeout_s``); append and return its decisions."""
        records = await self._effect(
            "read", lambda: self.log.wait_for(self.seq, self.type_names, timeout_s, self.batch)
        )
        decisions: list[Event] = []
        for record in records:
            try:
                decisions += self.apply(record.event)
            except Exception as exc:
                raise DecisionError(
                    self.name, record.seq, type_name(type(record.event)), exc
                ) from exc
            self.seq = record.seq
        if decisions:
            await self._effect("append", lambda: self.log.append_async(decisions))
        if len(records) < self.batch:
            self.caught_up = True
        return decisions

    async def run_forever(self, timeout_s: float, on_step: Callable[[], Awaitable[None]]) -> None:
        """Step and call ``on_step`` after each batch or timeout, until cancelled or a
        :class:`DecisionError` stops it."""
        try:
            while True:
                await self.step(timeout_s)
                await self._effect("on_step", on_step)
        except DecisionError:
            log.critical("%s stopped", self.name, exc_info=True)
            raise

    async def _effect(self, effect: str, call: Callable[[], Awaitable[_T]]) -> _T:
        attempt = 0
        while True:
            try:
                return await call()
            except DecisionError:
                raise
            except Exception as exc:
                delay = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
                attempt += 1
                log.warning(
                    "%s: %s failed (attempt %d), trying again in %.1f s: %s",
                    self.name,
                    effect,
                    attempt,
                    delay,
                    exc,
                )
                await self._record(effect, attempt, exc, delay)
                await asyncio.sleep(delay)

    async def _record(self, effect: str, attempt: int, exc: Exception, delay: float) -> None:
        failed = EffectFailed(
            actor=self.name,
            run_id=self._run_id,
            effect=effect,
            seq=self.seq,
            attempt=attempt,
            error=f"{type(exc).__name__}: {exc}"[:500],
            retry_in_s=delay,
        )
        try:
            await self.log.append_async([failed])
        except Exception as record_exc:
            # The log itself is what failed: the warning above is the only record then.
            log.warning("%s: could not record %s: %s", self.name, failed.key, record_exc)
