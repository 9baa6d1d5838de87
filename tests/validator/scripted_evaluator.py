"""An Evaluator body whose outcome is written in the image name, for the scheduler's actor tests.

It runs no containers (the real Evaluator is tested with dockerd in tests/runner and end to end in
tests/e2e); it exercises what the scheduler owns: dispatch, deaths, retries, and the event flow.
Image names (last path part): ``score-0.25`` passes with that score, ``fail`` fails the gate,
``crash-once`` kills its own worker on the first attempt then passes, ``crash`` always dies.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from actors.log_client import LogClient
from events.types import EvalFinished, EvalQueued, EvalStarted, decode_msgpack

# Survives the crash it records; eval ids are unique per test session, so marks never collide.
CRASH_MARKS = Path(tempfile.gettempdir()) / "arena-crash-marks"


class ScriptedEvaluator:
    def __init__(self, profile_name: str) -> None:
        self.log = LogClient()

    def pid(self) -> int:
        return os.getpid()

    def evaluate(self, data: bytes) -> None:
        (queued,) = decode_msgpack(data)
        assert isinstance(queued, EvalQueued)
        behaviour = queued.image.rsplit("/", 1)[-1]
        mark = CRASH_MARKS / queued.eval_id
        attempt = 2 if mark.exists() else 1
        self.log.append(
            [EvalStarted(eval_id=queued.eval_id, attempt=attempt, worker=socket.gethostname())]
        )
        if behaviour == "crash" or (behaviour == "crash-once" and attempt == 1):
            CRASH_MARKS.mkdir(parents=True, exist_ok=True)
            mark.touch()
            os._exit(1)  # the worker process dies mid-eval, as under SIGKILL
        verdict, score = ("fail", 0.0) if behaviour == "fail" else ("pass", 0.0)
        if behaviour.startswith("score-"):
            score = float(behaviour.removeprefix("score-"))
        elif behaviour == "crash-once":
            score = 0.05
        self.log.append(
            [
                EvalFinished(
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
            ]
        )
