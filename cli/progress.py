"""Live progress of an evaluation round in the terminal (rich), fed by ``harness.eval.Progress``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from events.types import BaselineMeasured, EvalFinished, EvalQueued, EvalStarted, Event
from harness.eval import Progress as RoundProgress

__all__ = ["RUNNING_INPUTS", "RoundProgressView", "describe", "describe_running"]

# The events describe_running reads.
RUNNING_INPUTS = (EvalQueued, EvalStarted, BaselineMeasured, EvalFinished)

_PHASES = {
    "pull": "checking and pulling images",
    "baseline_before": "measuring the baseline",
    "challenger": "starting and measuring the challenger",
    "baseline_after": "measuring the baseline again",
    "gate": "re-scoring the challenger's answers (gate)",
    "done": "judged",
}


def describe(progress: RoundProgress) -> str:
    """One line: which image, which phase, which pass of which level."""
    phase = _PHASES.get(progress.phase, progress.phase)
    text = f"image {progress.image + 1}/{progress.images}: {phase}"
    if progress.requests and progress.phase in ("baseline_before", "challenger", "baseline_after"):
        if progress.concurrency == 0:
            text += ", warm-up"
        else:
            text += (
                f", concurrency {progress.concurrency} "
                f"pass {progress.pass_index + 1}/{progress.passes}"
            )
    return text


class RoundProgressView:
    """A rich progress bar showing the latest :class:`harness.eval.Progress`; use as ``with``."""

    def __init__(self, console: Console | None = None) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.bar.add_task("starting", total=None)

    def update(self, progress: RoundProgress) -> None:
        if not self.bar.live.is_started:
            self.bar.start()  # on the first news only: a run refused at once prints nothing
        self.bar.update(
            self.task,
            description=describe(progress),
            completed=progress.done,
            total=progress.requests or None,
        )

    def __enter__(self) -> RoundProgressView:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.bar.live.is_started:
            self.bar.stop()


def describe_running(events: Sequence[Event], who: Callable[[str], str] = lambda h: h[:10]) -> str:
    """One line from a validator's log: what the evaluation running now is doing.

    The log records a phase as it ends (``BaselineMeasured``), so this is coarser than
    :func:`describe`, which the evaluation itself feeds.
    """
    queued = {e.eval_id: e for e in events if isinstance(e, EvalQueued)}
    finished = {e.eval_id for e in events if isinstance(e, EvalFinished)}
    started = [e.eval_id for e in events if isinstance(e, EvalStarted)]
    open_ids = [i for i in dict.fromkeys(started) if i not in finished]
    if not open_ids:
        waiting = len(set(queued) - finished)
        return f"{waiting} evaluations queued" if waiting else "no evaluation running"
    logged = {(e.eval_id, e.phase) for e in events if isinstance(e, BaselineMeasured)}
    # A bracket's challengers are measured in turn, then gated together after its baseline.
    gating = [i for i in open_ids if (i, "after") in logged]
    measuring = [i for i in open_ids if (i, "before") in logged]
    if gating:
        eval_id, doing = gating[0], "gate and score"
    elif measuring:
        eval_id, doing = measuring[-1], "starting and measuring the challenger"
    else:
        eval_id, doing = open_ids[0], "pulling images, measuring the baseline"
    name = who(queued[eval_id].hotkey) if eval_id in queued else eval_id
    return f"eval {eval_id} of {name} ({len(open_ids)} open in the round): {doing}"
