"""Scheduler actor: folds submissions into rounds and hands each open round to an Evaluator.

Decisions (rounds, ``EvalQueued``, skipped submissions) come from :mod:`rules.queue_policy`;
this actor only adds the effects around them:
- inspection: each queued commitment's manifest and config are read from its registry (no
  pull) and logged as ``ImageInspected``, the fingerprint the copy rule compares; a registry
  that cannot answer is asked again next poll, never held against the miner; a final refusal
  (no such manifest, wrong digest, too large...) is logged with its reason code, and the queue
  policy ends the submission (the evaluator still checks the manifest again when it pulls);
- the round clock: a ``RoundDue`` carrying the chain head's hash, once commitments are settled
  and inspected, or once the king is due to be re-measured;
- dispatch: a round's unfinished evals, in the round's order (the king's re-measurement among
  them), go to ONE Evaluator actor, which judges them against one baseline kept up for the
  round; it asks for the profile's eval resources (a request no node can satisfy is what makes
  the autoscaler start a GPU node);
- retries: attempts are numbered per eval, here. When the evaluator dies, the round's evals
  that have no ``EvalFinished`` in the log are dispatched again to a new actor, each as its next
  attempt, up to ``max_eval_attempts``; an eval past it ends as ``EvalFinished(verdict="error")``
  with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from actors.eval_attempt import EvalAttempt, encode_attempts
from actors.fold_loop import FoldLoop
from actors.log_client import LogClient
from actors.placement import NAMESPACE, actor_name, evaluator_options
from actors.validator_config import ValidatorConfig
from chain.client import ChainClient, ChainError
from events.types import (
    EvalFinished,
    EvalQueued,
    EvalStarted,
    Event,
    ImageInspected,
    RoundDue,
    SubmissionCommitted,
)
from harness.sandbox_errors import ImageRejected
from harness.sandbox_image import parse_ref, read_image
from rules.queue_policy import INPUT_TYPES, QueueState
from rules.reasons import REGISTRY_FAULTS

__all__ = [
    "Scheduler",
    "evaluator_name",
    "inspect_image",
    "next_attempts",
    "POLL_S",
]

log = logging.getLogger(__name__)
POLL_S = 1.0


def evaluator_name(round_no: int, attempt: int) -> str:
    """Ray name of the Evaluator running one attempt of one round (tests find its PID by it)."""
    return actor_name(f"eval.r{round_no}.{attempt}")


def next_attempts(
    evals: list[EvalQueued], attempts: dict[str, int], max_attempts: int
) -> tuple[list[EvalAttempt], list[EvalQueued]]:
    """Split unfinished ``evals`` into (their next attempts to dispatch, those out of attempts).

    ``attempts`` holds each eval's attempts so far (none: 0); the round's order is kept. An
    evaluator judges a round's evals in order, so a death is the doing of the first unfinished
    eval: only that one runs out of attempts, and the evals after it are never spent by it.
    """
    dispatch = [EvalAttempt(queued=q, attempt=attempts.get(q.eval_id, 0) + 1) for q in evals]
    if dispatch and dispatch[0].attempt > max_attempts:
        return dispatch[1:], [dispatch[0].queued]
    return dispatch, []


def inspect_image(s: SubmissionCommitted, max_bytes: int) -> ImageInspected | None:
    """What the registry says of ``s``'s image; None when the registry is at fault (ask again)."""
    try:
        info = read_image(parse_ref(s.ref), max_bytes)
    except ImageRejected as exc:
        if exc.reason in REGISTRY_FAULTS:
            log.warning("cannot inspect %s (%s): %s; asking again", s.ref, s.key, exc)
            return None
        return ImageInspected(
            hotkey=s.hotkey, block=s.block, digest=s.digest, refused=exc.reason, error=str(exc)
        )
    return ImageInspected(
        hotkey=s.hotkey,
        block=s.block,
        digest=s.digest,
        size_bytes=info.manifest.size_bytes,
        config_digest=info.manifest.config_digest,
        runtime_digest=info.runtime_digest,
    )


class Scheduler:
    """Ray actor body; the supervisor starts it detached as ``arena.scheduler``.

    ``evaluator_cls`` is the Evaluator actor body (``actors.evaluator.Evaluator`` by default);
    it must take the profile and the evidence retention and offer
    ``evaluate_round(attempts_msgpack)`` (the bytes of
    :func:`actors.eval_attempt.encode_attempts`), appending an ``EvalFinished`` per eval.
    """

    def __init__(self, config: ValidatorConfig, evaluator_cls: type | None = None) -> None:
        if evaluator_cls is None:
            from actors.evaluator import Evaluator

            evaluator_cls = Evaluator
        self.config = config
        self.profile = config.profile
        self.evaluator = ray.remote(evaluator_cls)
        self.state = self._new_state()
        self.log = LogClient()
        self.fold = FoldLoop(self.log, (*INPUT_TYPES, EvalStarted), self._apply, name="scheduler")
        self.chain = ChainClient(config.chain_url)
        self.attempts: dict[str, int] = {}
        # The open round's dispatch (round number, task), kept until the round closes so a round
        # whose verdicts the fold has yet to read is not dispatched twice; and, while an
        # Evaluator runs, eval id -> its Ray name.
        self.running: tuple[int, asyncio.Task[None]] | None = None
        self.evaluating: dict[str, str] = {}
        # Submission key -> its inspection; keys whose last inspection the registry failed are
        # asked again each poll and no longer hold a round back.
        self.inspections: dict[str, asyncio.Task[None]] = {}
        self.unreachable: set[str] = set()
        self.last_submission_at = time.monotonic()
        self.due_for: int | None = None
        self.loop = asyncio.get_running_loop().create_task(
            self.fold.run_forever(POLL_S, self._after_step)
        )

    # --- fold ----------------------------------------------------------------------------------

    def _apply(self, event: Event) -> list[Event]:
        if isinstance(event, EvalStarted):
            # Attempts dispatched before a restart are in the log: the count continues from them.
            self.attempts[event.eval_id] = max(self.attempts.get(event.eval_id, 0), event.attempt)
            return []
        if isinstance(event, RoundDue):
            self.due_for = None
        decisions = self.state.apply(event)
        if isinstance(event, SubmissionCommitted):
            self.last_submission_at = time.monotonic()
        return decisions

    def _new_state(self) -> QueueState:
        return QueueState(
            challengers_per_round=self.config.challengers_per_round,
            remeasure_every_blocks=self.profile.remeasure_every_blocks,
        )

    async def _after_step(self) -> None:
        if not self.fold.caught_up:
            return
        self._inspect_pending()
        await self._maybe_round_due()
        self._dispatch_open_round()

    # --- effects -------------------------------------------------------------------------------

    def _inspect_pending(self) -> None:
        waiting = {s.key: s for s in self.state.uninspected()}
        # Inspected (folded) or gone from the queue: forgotten, once their task is done.
        self.inspections = {
            k: t for k, t in self.inspections.items() if k in waiting or not t.done()
        }
        self.unreachable &= waiting.keys()
        for key, s in waiting.items():
            task = self.inspections.get(key)
            if task is None or (task.done() and key in self.unreachable):
                self.inspections[key] = asyncio.get_running_loop().create_task(self._inspect(s))

    async def _inspect(self, s: SubmissionCommitted) -> None:
        try:
            event = await asyncio.to_thread(inspect_image, s, self.profile.max_image_bytes)
            if event is not None:
                await self.log.append_async([event])
                return
        except Exception as exc:
            # A reply the client could not read, or the log away: the validator's side, so the
            # miner is not blamed and the next poll asks again.
            log.warning("inspecting %s (%s) failed: %s; asking again", s.ref, s.key, exc)
        self.unreachable.add(s.key)

    async def _maybe_round_due(self) -> None:
        number = self.state.last_round + 1
        settled = time.monotonic() - self.last_submission_at >= self.config.round_settle_s
        # Commitments that land together are evaluated together: wait for each queued image's
        # first inspection (one its registry failed no longer holds the round back).
        inspecting = any(s.key not in self.unreachable for s in self.state.uninspected())
        if self.state.round is not None or self.due_for == number or not settled or inspecting:
            return
        if not self.state.ready() and self.state.remeasure_block() is None:
            return  # nothing would open a round: spare the chain a read
        try:
            block = await asyncio.to_thread(self.chain.finalized_number)
            if not self.state.round_due(block):
                return
            seed = await asyncio.to_thread(self.chain.block_hash, block)
        except ChainError as exc:
            log.warning("cannot read the chain head for round %d: %s; retrying", number, exc)
            return
        if seed is None:
            log.warning("block %d has no hash yet; round %d waits", block, number)
            return
        self.due_for = number
        await self.log.append_async([RoundDue(round=number, block=block, seed=seed)])

    def _dispatch_open_round(self) -> None:
        round_no = self.state.round.number if self.state.round is not None else None
        if self.running is not None:
            number, task = self.running
            if number != round_no:
                task.cancel()  # the round closed: its evaluator has nothing left to judge
                self.running = None
            elif task.done() and not task.cancelled() and task.exception() is not None:
                # The log or Ray failed the dispatch itself (not an evaluator death, which it
                # handles): the round's unfinished evals are dispatched again.
                log.warning(
                    "round %d dispatch failed: %s; dispatching again", number, task.exception()
                )
                self.running = None
        unfinished = self.state.in_flight()
        if round_no is not None and self.running is None and unfinished:
            task = asyncio.get_running_loop().create_task(
                self._evaluate_round(round_no, unfinished)
            )
            self.running = (round_no, task)

    async def _evaluate_round(self, round_no: int, evals: list[EvalQueued]) -> None:
        """Judge ``evals`` on one Evaluator; after a death, the unfinished ones on a new one."""
        last_error = ""
        while evals := await self._unfinished(evals):
            attempts, spent = next_attempts(evals, self.attempts, self.config.max_eval_attempts)
            if spent:
                await self.log.append_async(
                    [_died(q, self.config.max_eval_attempts, last_error) for q in spent]
                )
            if not attempts:
                return
            for a in attempts:
                self.attempts[a.queued.eval_id] = a.attempt
            name = evaluator_name(round_no, max(a.attempt for a in attempts))
            evaluator = self.evaluator.options(
                name=name,
                namespace=NAMESPACE,
                max_restarts=0,
                **evaluator_options(self.profile),
            ).remote(self.profile, self.config.evidence_keep)
            self.evaluating = {a.queued.eval_id: name for a in attempts}
            try:
                await evaluator.evaluate_round.remote(encode_attempts(attempts))
                return  # the evaluator appended an EvalFinished for each
            except (RayActorError, RayTaskError) as exc:
                last_error = _first_line(exc)
                log.warning("round %d: evaluator %s died: %s", round_no, name, last_error)
            finally:
                self.evaluating = {}
                ray.kill(evaluator)  # frees the eval slot, so an idle GPU node can scale down

    async def _unfinished(self, evals: list[EvalQueued]) -> list[EvalQueued]:
        """Those of ``evals`` with no ``EvalFinished`` in the log, in order.

        Read from the log, not the fold: the fold may not yet hold what a dead evaluator
        appended just before it died, and an eval it finished must not be judged again.
        """
        _, rows = await asyncio.to_thread(
            self.log.sql,
            "SELECT payload->>'eval_id' FROM events "
            "WHERE type = 'EvalFinished' AND list_contains(?, payload->>'eval_id')",
            [[q.eval_id for q in evals]],
        )
        finished = {eval_id for (eval_id,) in rows}
        return [q for q in evals if q.eval_id not in finished]

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
        """eval id -> Ray name of the Evaluator running its current attempt (its round's)."""
        return dict(self.evaluating)


def _died(queued: EvalQueued, max_attempts: int, last_error: str) -> EvalFinished:
    """The verdict of an eval whose evaluator died in every attempt: the validator's side."""
    return EvalFinished(
        eval_id=queued.eval_id,
        hotkey=queued.hotkey,
        digest=queued.digest,
        verdict="error",
        reason=f"evaluator died in all {max_attempts} attempts; last: {last_error}",
        score=0.0,
        noise=0.0,
        metrics={},
        role=queued.role,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
