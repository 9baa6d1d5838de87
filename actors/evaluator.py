"""Evaluator: one evaluation slot. Runs ``harness.eval`` for an ``EvalQueued`` and logs the result.

Interface (the scheduler's only call)::

    evaluator = start_evaluator(profile)            # pinned by evaluator_options(profile)
    ray.get(evaluator.evaluate.remote(encode_msgpack([queued])))   # -> None

``evaluate`` appends ``EvalStarted``, ``BaselineMeasured`` (before, after) and ``EvalFinished``
through the event log; every event has an idempotency key, so a retried call after a crash
re-appends nothing twice; a new attempt (a new actor) numbers itself from the ``EvalStarted``
events already in the log.
It holds no wallet key and never touches the chain. A validator-side failure (engine, baseline)
ends as ``verdict="error"``; the scheduler decides whether to retry.
"""

from __future__ import annotations

import socket

import docker
import ray

from actors.log_client import LogClient
from actors.placement import evaluator_options
from events.types import (
    BaselineMeasured,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    Event,
    decode_msgpack,
)
from harness.eval import evaluate, flat_metrics
from harness.measure import Measurement
from harness.profile import Profile, get_profile
from harness.runner import remove_leftovers

__all__ = ["Evaluator", "start_evaluator"]


class Evaluator:
    """Ray actor body; create it with :func:`start_evaluator`."""

    def __init__(self, profile_name: str) -> None:
        self.profile: Profile = get_profile(profile_name)
        self.client = docker.from_env()
        self.log = LogClient()
        # One eval slot per machine: containers still labelled as sandboxes belong to an
        # evaluator that died mid-eval, and would otherwise hold the machine.
        remove_leftovers(self.client)

    def evaluate(self, eval_queued_msgpack: bytes) -> None:
        """Evaluate the single ``EvalQueued`` in the msgpack batch; results go to the log."""
        (queued,) = decode_msgpack(eval_queued_msgpack)
        if not isinstance(queued, EvalQueued):
            raise TypeError(f"evaluate() takes an EvalQueued, got {type(queued).__name__}")
        attempt = self._attempts_so_far(queued.eval_id) + 1
        self._append(
            EvalStarted(eval_id=queued.eval_id, attempt=attempt, worker=socket.gethostname())
        )

        def on_baseline(phase: str, measurement: Measurement) -> None:
            self._append(
                BaselineMeasured(
                    eval_id=queued.eval_id, phase=phase, metrics=flat_metrics(measurement)
                )
            )

        report = evaluate(
            self.client,
            f"{queued.image}@{queued.digest}",
            self.profile,
            queued.round_seed,
            eval_id=queued.eval_id,
            on_baseline=on_baseline,
        )
        self._append(
            EvalFinished(
                eval_id=queued.eval_id,
                hotkey=queued.hotkey,
                digest=queued.digest,
                verdict=report.verdict,
                reason=report.reason,
                score=report.score,
                noise=report.noise,
                metrics=report.metrics,
                role=queued.role,
            )
        )

    def _attempts_so_far(self, eval_id: str) -> int:
        # One Evaluator actor runs one attempt; earlier attempts are known only to the log.
        _, rows = self.log.sql(
            "SELECT count(*) FROM events WHERE type = 'EvalStarted' AND payload->>'eval_id' = ?",
            [eval_id],
        )
        return int(rows[0][0])

    def _append(self, event: Event) -> None:
        self.log.append([event])


def start_evaluator(profile: Profile, **options: object) -> ray.actor.ActorHandle:
    """Start an Evaluator where the profile's resources are (4xH200, or the local eval slot)."""
    return (
        ray.remote(Evaluator).options(**evaluator_options(profile), **options).remote(profile.name)
    )
