"""An Evaluator body whose outcomes are written in the image names, for the scheduler's actor tests.

It runs no containers (the real Evaluator is tested with dockerd in tests/sandbox and end to end
in tests/e2e); it exercises what the scheduler owns: rounds dispatched to one evaluator, deaths,
retries, and the event flow. Like the real one it takes a round's unfinished evals with their
attempt numbers, logs every ``EvalStarted`` first, then judges the evals in order, each
``EvalFinished`` appended as soon as it is judged. Its ``EvalStarted.worker`` is its own Ray
actor name, so a test sees which evaluator ran which attempt.
Image names (last path part): ``score-0.25`` passes with that score, ``fail`` fails the gate,
``crash-once`` kills its own worker on its first attempt then passes, ``crash`` always dies,
``hang-once`` never ends its first attempt (for a test to kill its node) then passes.
"""

from __future__ import annotations

import os
import threading

import ray

from actors.eval_attempt import EvalAttempt, decode_attempts
from actors.log_client import LogClient
from events.types import EvalFinished, EvalStarted
from harness.profile import Profile


class ScriptedEvaluator:
    def __init__(self, profile: Profile, evidence_keep: int) -> None:
        self.log = LogClient()

    def evaluate_round(self, data: bytes) -> None:
        attempts = decode_attempts(data)
        name = ray.get_runtime_context().get_actor_name() or ""
        self.log.append(
            [
                EvalStarted(eval_id=a.queued.eval_id, attempt=a.attempt, worker=name)
                for a in attempts
            ]
        )
        for a in attempts:
            self.log.append([_judge(a)])


def _judge(a: EvalAttempt) -> EvalFinished:
    """The scripted verdict of ``a``; a crashing behaviour kills this worker instead."""
    queued = a.queued
    behaviour = queued.image.rsplit("/", 1)[-1]
    if behaviour == "crash" or (behaviour == "crash-once" and a.attempt == 1):
        os._exit(1)  # the worker process dies mid-round, as under SIGKILL
    if behaviour == "hang-once" and a.attempt == 1:
        threading.Event().wait()  # mid-eval until its worker or node is killed
    verdict, score = ("fail", 0.0) if behaviour == "fail" else ("pass", 0.0)
    if behaviour.startswith("score-"):
        score = float(behaviour.removeprefix("score-"))
    elif behaviour in ("crash-once", "hang-once"):
        score = 0.05
    return EvalFinished(
        eval_id=queued.eval_id,
        hotkey=queued.hotkey,
        digest=queued.digest,
        verdict=verdict,
        reason="garbage after a correct prefix" if verdict == "fail" else "",
        score=score,
        noise=0.01,
        metrics={"ttft_ms_p50": 1.0},
        role=queued.role,
    )
