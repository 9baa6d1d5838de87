"""Scheduler actor: folds submissions into rounds and hands each queued eval to an Evaluator.

Decisions (rounds, ``EvalQueued``, skipped submissions) come from :mod:`actors.queue_policy`;
this actor only adds the effects around them:
- the round clock: a ``RoundDue`` carrying the chain head's hash, once commitments are settled;
- dispatch: one Evaluator actor per eval attempt, asking for the profile's eval resources (a
  request no node can satisfy is what makes the autoscaler start a GPU node);
- retries: an eval whose evaluator died is dispatched again with the same eval id, up to
  ``max_eval_attempts``; then it ends as ``EvalFinished(verdict="error")`` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from actors.fold_loop import FoldLoop
from actors.log_client import LogClient
from actors.placement import NAMESPACE, actor_name, evaluator_options
from actors.queue_policy import INPUT_TYPES, QueueState
from actors.validator_config import ValidatorConfig
from chain.client import ChainClient, ChainError
from events.types import (
    EvalFinished,
    EvalQueued,
    EvalStarted,
    Event,
    RoundDue,
    SubmissionCommitted,
    encode_msgpack,
)
from harness.profile import get_profile

__all__ = ["Scheduler", "evaluator_name"]

log = logging.getLogger(__name__)
POLL_S = 1.0


def evaluator_name(eval_id: str, attempt: int) -> str:
    """Ray name of the Evaluator running one attempt of one eval (tests find its PID by it)."""
    return actor_name(f"eval.{eval_id}.{attempt}")


class Scheduler:
    """Ray actor body; the supervisor starts it detached as ``arena.scheduler``.

    ``evaluator_cls`` is the Evaluator actor body (``actors.evaluator.Evaluator`` by default);
    it must take the profile name and offer ``evaluate(eval_queued_msgpack)``.
    """

    def __init__(self, config: ValidatorConfig, evaluator_cls: type | None = None) -> None:
        if evaluator_cls is None:
            from actors.evaluator import Evaluator

            evaluator_cls = Evaluator
        self.config = config
        self.profile = get_profile(config.profile)
        self.evaluator = ray.remote(evaluator_cls)
        self.state = QueueState(challengers_per_round=config.challengers_per_round)
        self.log = LogClient()
        self.fold = FoldLoop(self.log, (*INPUT_TYPES, EvalStarted), self._apply)
        self.chain = ChainClient(config.chain_url)
        self.attempts: dict[str, int] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.last_submission_at = time.monotonic()
        self.due_for: int | None = None
        self.loop = asyncio.get_running_loop().create_task(
            self.fold.run_forever(POLL_S, self._after_step, reset=self._reset, name="scheduler")
        )

    # --- fold ----------------------------------------------------------------------------------

    def _apply(self, event: Event) -> list[Event]:
        if isinstance(event, EvalStarted):
            # Evaluators number attempts themselves; a restarted scheduler continues the count.
            self.attempts[event.eval_id] = max(self.attempts.get(event.eval_id, 0), event.attempt)
            return []
        if isinstance(event, RoundDue):
            self.due_for = None
        decisions = self.state.apply(event)
        if isinstance(event, SubmissionCommitted):
            self.last_submission_at = time.monotonic()
        return decisions

    def _reset(self) -> None:
        self.state = QueueState(challengers_per_round=self.config.challengers_per_round)

    async def _after_step(self) -> None:
        if not self.fold.caught_up:
            return
        await self._maybe_round_due()
        self._dispatch_open_evals()

    # --- effects -------------------------------------------------------------------------------

    async def _maybe_round_due(self) -> None:
        number = self.state.last_round + 1
        settled = time.monotonic() - self.last_submission_at >= self.config.round_settle_s
        if not self.state.round_due() or self.due_for == number or not settled:
            return
        try:
            block, seed = await asyncio.to_thread(self._chain_head)
        except ChainError as exc:
            log.warning("cannot read the chain head for round %d: %s; retrying", number, exc)
            return
        self.due_for = number
        await self.log.append_async([RoundDue(round=number, block=block, seed=seed)])

    def _chain_head(self) -> tuple[int, str]:
        block = self.chain.finalized_number()
        seed = self.chain.block_hash(block)
        if seed is None:
            raise ChainError(f"block {block} has no hash yet")
        return block, seed

    def _dispatch_open_evals(self) -> None:
        open_ids = {q.eval_id for q in self.state.in_flight()}
        for eval_id in [e for e in self.running if e not in open_ids]:
            self.running.pop(eval_id).cancel()
        for queued in self.state.in_flight():
            if queued.eval_id not in self.running:
                self.running[queued.eval_id] = asyncio.get_running_loop().create_task(
                    self._evaluate(queued)
                )

    async def _evaluate(self, queued: EvalQueued) -> None:
        last_error = ""
        while True:
            attempt = self.attempts.get(queued.eval_id, 0) + 1
            if attempt > self.config.max_eval_attempts:
                break
            self.attempts[queued.eval_id] = attempt
            evaluator = self.evaluator.options(
                name=evaluator_name(queued.eval_id, attempt),
                namespace=NAMESPACE,
                max_restarts=0,
                **evaluator_options(self.profile),
            ).remote(self.profile.name)
            try:
                await evaluator.evaluate.remote(encode_msgpack([queued]))
                return  # the evaluator appended EvalFinished
            except (RayActorError, RayTaskError) as exc:
                last_error = _first_line(exc)
                log.warning("eval %s attempt %d died: %s", queued.eval_id, attempt, last_error)
            finally:
                ray.kill(evaluator)  # frees the eval slot, so an idle GPU node can scale down
        await self.log.append_async(
            [
                EvalFinished(
                    eval_id=queued.eval_id,
                    hotkey=queued.hotkey,
                    digest=queued.digest,
                    verdict="error",
                    reason=(
                        f"evaluator died in all {self.config.max_eval_attempts} attempts; "
                        f"last: {last_error}"
                    ),
                    score=0.0,
                    noise=0.0,
                    metrics={},
                    role=queued.role,
                )
            ]
        )

    # --- queries -------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """Queue, open round and running attempts, as plain data for the CLI."""
        return {
            "seq": self.fold.seq,
            "caught_up": self.fold.caught_up,
            "round": self.state.last_round,
            "open": self.state.round is not None,
            "queue": [(s.hotkey, s.block, s.digest) for s in self.state.queue()],
            "in_flight": [
                (q.eval_id, q.hotkey, q.role, self.attempts.get(q.eval_id, 0))
                for q in self.state.in_flight()
            ],
        }

    async def running_evaluators(self) -> dict[str, str]:
        """eval id -> Ray name of the Evaluator running its current attempt."""
        return {e: evaluator_name(e, self.attempts.get(e, 1)) for e in self.running}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
