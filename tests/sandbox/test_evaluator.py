"""The Evaluator actor, on the session's Ray and event log, as the scheduler drives it."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import docker
import msgspec
import pytest

from actors.eval_attempt import EvalAttempt, encode_attempts
from actors.evaluator import start_evaluator
from actors.log_client import LogClient
from events.types import BaselineMeasured, EvalFinished, EvalQueued, EvalStarted
from harness.eval import flat_metrics
from harness.evidence import EVIDENCE_DIR, KINDS
from harness.evidence import read as read_evidence
from harness.profile import get_profile
from harness.runner import LABEL

pytestmark = [pytest.mark.docker, pytest.mark.vllm, pytest.mark.ray]


def test_evaluator_logs_started_baseline_and_finished(
    event_log_actor,
    built_images: dict[str, str],
    tiny_model_dir: Path,
    docker_client: docker.DockerClient,
) -> None:
    import ray

    image, digest = built_images["adv-crash"].split("@")
    queued = EvalQueued(
        eval_id=f"test-evaluator-{secrets.token_hex(4)}",
        hotkey="5HotkeyOfATestMiner",
        image=image,
        digest=digest,
        role="challenger",
        submitted_block=7,
        round_seed="0x" + "cd" * 32,
    )
    env = {"DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")}
    # As on a 4-GPU node: the baseline gives its place up while the challenger runs.
    profile = msgspec.structs.replace(get_profile("local"), baseline_stays_up=False)
    since = time.time()
    evaluator = start_evaluator(profile, runtime_env={"env_vars": env})
    try:
        data = encode_attempts([EvalAttempt(queued=queued, attempt=1)])
        ray.get(evaluator.evaluate_round.remote(data), timeout=900)
    finally:
        ray.kill(evaluator)
    types = (EvalStarted, BaselineMeasured, EvalFinished)
    mine = [
        r.event
        for r in LogClient().replay(types=[t.__name__ for t in types])
        if r.event.eval_id == queued.eval_id
    ]
    assert [type(e) for e in mine] == list(types)
    started, baseline, finished = mine
    assert started.attempt == 1
    assert baseline.phase == "before" and baseline.metrics["c1_completed"] > 0
    assert (finished.verdict, finished.reason, finished.score) == ("fail", "crash", 0.0)
    assert (finished.hotkey, finished.digest) == (queued.hotkey, queued.digest)
    seen = docker_client.events(
        since=int(since) - 1,
        until=int(time.time()) + 1,
        filters={"type": "container", "event": ["start", "die"], "label": LABEL},
        decode=True,
    )
    order = [
        (e["Action"], e["Actor"]["Attributes"]["name"].split("-")[-2])
        for e in seen
        if queued.eval_id in e["Actor"]["Attributes"]["name"]
    ]
    assert order[:3] == [("start", "baseline"), ("die", "baseline"), ("start", "challenger")]
    # Its evidence is beside the event log, as the sha256s in EvalFinished say.
    assert set(finished.evidence) == {f"{queued.eval_id}.{kind}.parquet" for kind in KINDS}
    folder = Path(LogClient().path()).parent / EVIDENCE_DIR
    kept = read_evidence(folder, queued.eval_id, finished.evidence)
    assert list(kept.measurements) == ["baseline_before"]  # the challenger crashed unmeasured
    assert flat_metrics(kept.measurements["baseline_before"]) == baseline.metrics
    assert kept.verdict is None and kept.rescored == []
