"""Live progress: `arena eval`'s line for each harness.eval.Progress, and `arena subnet`'s status
line, which says what the running evaluation is doing from its events; `arena subnet` keeps
Ray's and Serve's own log lines in the run's folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
from rich.console import Console

from cli.progress import RoundProgressView, describe
from cli.subnet import LocalSubnetRun
from events.types import BaselineMeasured, EvalFinished, EvalQueued, EvalStarted
from harness.eval import Progress
from harness.profile import repo_root


def test_each_progress_is_one_line_naming_phase_level_and_pass() -> None:
    at = Progress(image=1, images=3, phase="challenger", passes=3)
    assert describe(at) == "image 2/3: starting and measuring the challenger"
    warm_up = describe(Progress(image=0, images=1, phase="baseline_before", requests=2))
    assert warm_up == "image 1/1: measuring the baseline, warm-up"
    level = Progress(
        image=0, images=1, phase="challenger", concurrency=4, pass_index=1, passes=3, requests=8
    )
    assert describe(level).endswith("challenger, concurrency 4 pass 2/3")
    console = Console(record=True, force_terminal=True, width=120)
    with RoundProgressView(console) as view:
        view.update(msgspec.structs.replace(level, done=5))
        task = view.bar.tasks[0]
        assert (task.completed, task.total, task.description) == (5, 8, describe(level))


def _queued(eval_id: str, hotkey: str) -> EvalQueued:
    return EvalQueued(
        eval_id=eval_id,
        hotkey=hotkey,
        image="127.0.0.1:5000/miner",
        digest="sha256:" + "a" * 64,
        role="challenger",
        submitted_block=1,
        round_seed="0x00",
    )


def test_the_status_line_follows_the_running_eval(tmp_path: Path) -> None:
    run = LocalSubnetRun(tmp_path)
    run.hotkeys = {"reference": "5Ref", "cheater": "5Cheat"}
    events: list = [_queued("e1", "5Ref"), _queued("e2", "5Cheat")]
    assert run.running(events) == "2 evaluations queued"
    events += [EvalStarted(eval_id=e, attempt=1, worker="w") for e in ("e1", "e2")]
    assert run.running(events).endswith(
        "e1 of reference (2 open in the round): pulling images, measuring the baseline"
    )
    events.append(BaselineMeasured(eval_id="e1", phase="before", metrics={}))
    assert run.running(events).endswith("starting and measuring the challenger")
    events.append(BaselineMeasured(eval_id="e1", phase="after", metrics={}))
    assert run.running(events).endswith("gate and score")
    events.append(
        EvalFinished(
            eval_id="e1", hotkey="5Ref", digest="d", verdict="pass", reason="ok",
            score=0.0, noise=0.0, metrics={},
        )
    )  # fmt: skip
    assert run.running(events) == (
        "eval e2 of cheater (1 open in the round): pulling images, measuring the baseline"
    )


def test_the_status_line_follows_a_bracket_of_two(tmp_path: Path) -> None:
    run = LocalSubnetRun(tmp_path)
    run.hotkeys = {"reference": "5Ref", "cheater": "5Cheat"}
    events: list = [_queued("e1", "5Ref"), _queued("e2", "5Cheat")]
    events += [EvalStarted(eval_id=e, attempt=1, worker="w") for e in ("e1", "e2")]
    events.append(BaselineMeasured(eval_id="e1", phase="before", metrics={}))
    # e1 is measured and waits for the bracket's baseline; e2 shares its "before".
    events.append(BaselineMeasured(eval_id="e2", phase="before", metrics={}))
    assert run.running(events).endswith(
        "e2 of cheater (2 open in the round): starting and measuring the challenger"
    )
    events += [BaselineMeasured(eval_id=e, phase="after", metrics={}) for e in ("e1", "e2")]
    assert run.running(events).endswith("e1 of reference (2 open in the round): gate and score")


def test_ray_serve_and_python_log_lines_go_to_the_runs_file(tmp_path: Path) -> None:
    # In a subprocess: keep_logs rewires this process's loggers for good.
    script = (
        "import logging, sys; from pathlib import Path; from cli.subnet import LocalSubnetRun; "
        "LocalSubnetRun(Path(sys.argv[1])).keep_logs(); "
        "[logging.getLogger(n).warning('line of %s', n) for n in ('ray', 'ray.serve', 'asyncio')]"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=repo_root(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "line of" not in result.stdout + result.stderr
    kept = (tmp_path / "arena.log").read_text()
    assert all(f"line of {name}" in kept for name in ("ray", "ray.serve", "asyncio"))
