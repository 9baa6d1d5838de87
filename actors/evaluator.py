"""Evaluator: one evaluation slot. Runs ``harness.eval`` over a round's evals and logs the results.

Interface (the scheduler's only call)::

    evaluator = start_evaluator(profile)            # pinned by evaluator_options(profile)
    ray.get(evaluator.evaluate_round.remote(encode_attempts(unfinished)))   # -> None

``evaluate_round`` judges the round's unfinished evals (the king's re-measurement among them, in
the round's order) in one ``harness.eval.evaluate_round``, against one baseline kept up for the
round. It appends ``EvalStarted`` for each (its attempt, numbered by the scheduler) before the
first pull, then per eval ``BaselineMeasured`` before and after (a measurement that is one
eval's "after" and the next one's "before" is logged for both) and ``EvalFinished`` as soon as
that eval is judged, so an evaluator that dies midway keeps what it finished. Every event has an
idempotency key, so a retried call re-appends nothing twice. Each eval's evidence (what it was
judged on: ``harness.evidence``) is written beside the event log before its ``EvalFinished``,
which records the files' sha256s; the newest ``evidence_keep`` evals' evidence is kept.
It holds no wallet key and never touches the chain. A validator-side failure (engine, baseline)
ends as ``verdict="error"``; the scheduler decides whether to retry.
"""

from __future__ import annotations

import socket
from pathlib import Path

import docker
import ray

from actors.eval_attempt import decode_attempts
from actors.log_client import LogClient
from actors.placement import evaluator_options
from events.types import BaselineMeasured, EvalFinished, EvalStarted, Event
from harness.eval import EvalReport, evaluate_round, flat_metrics
from harness.evidence import DEFAULT_KEEP, EVIDENCE_DIR, Evidence
from harness.evidence import prune as prune_evidence
from harness.evidence import write as write_evidence
from harness.measurement import Measurement
from harness.profile import Profile
from harness.runner import remove_leftovers

__all__ = ["Evaluator", "start_evaluator"]


class Evaluator:
    """Ray actor body; create it with :func:`start_evaluator`."""

    def __init__(self, profile: Profile, evidence_keep: int = DEFAULT_KEEP) -> None:
        # Resolved once by whoever starts it (the scheduler, a test), shipped as data.
        self.profile = profile
        self.evidence_keep = evidence_keep
        self.client = docker.from_env()
        self.log = LogClient()
        # One eval slot per machine: containers still labelled as sandboxes belong to an
        # evaluator that died mid-eval, and would otherwise hold the machine.
        remove_leftovers(self.client)

    def evaluate_round(self, attempts_msgpack: bytes) -> None:
        """Judge the evals in ``encode_attempts`` bytes as one round; results go to the log."""
        attempts = decode_attempts(attempts_msgpack)
        queued = [a.queued for a in attempts]
        worker = socket.gethostname()
        # All at once, before the first pull: the round pulls every image before it measures.
        self._append(
            *(
                EvalStarted(eval_id=a.queued.eval_id, attempt=a.attempt, worker=worker)
                for a in attempts
            )
        )

        def on_baseline(i: int, phase: str, measurement: Measurement) -> None:
            self._append(
                BaselineMeasured(
                    eval_id=queued[i].eval_id, phase=phase, metrics=flat_metrics(measurement)
                )
            )

        reported: set[int] = set()

        def on_report(i: int, report: EvalReport) -> None:
            q = queued[i]
            self._append(
                EvalFinished(
                    eval_id=q.eval_id,
                    hotkey=q.hotkey,
                    digest=q.digest,
                    verdict=report.verdict,
                    reason=report.reason,
                    score=report.score,
                    noise=report.noise,
                    metrics=report.metrics,
                    role=q.role,
                    evidence=report.evidence,
                )
            )
            reported.add(i)

        evaluate_round(
            self.client,
            [f"{q.image}@{q.digest}" for q in queued],
            self.profile,
            queued[0].round_seed,
            eval_ids=[q.eval_id for q in queued],
            on_baseline=on_baseline,
            on_report=on_report,
            keep_evidence=self._keep_evidence,
        )
        if missing := [q.eval_id for i, q in enumerate(queued) if i not in reported]:
            # Raising makes the scheduler dispatch them again rather than wait on them forever.
            raise RuntimeError(
                f"harness.eval.evaluate_round returned without judging {', '.join(missing)}; "
                "this is a bug in the harness: every image must get a report"
            )

    def _keep_evidence(self, evidence: Evidence) -> dict[str, str]:
        """Evidence goes beside the event log (on a cluster, a folder every node shares)."""
        directory = Path(self.log.path()).parent / EVIDENCE_DIR
        digests = write_evidence(directory, evidence)
        prune_evidence(directory, self.evidence_keep)
        return digests

    def _append(self, *events: Event) -> None:
        self.log.append(list(events))


def start_evaluator(profile: Profile, **options: object) -> ray.actor.ActorHandle:
    """Start an Evaluator where the profile's resources are (4xH200, or the local eval slot)."""
    return ray.remote(Evaluator).options(**evaluator_options(profile), **options).remote(profile)
