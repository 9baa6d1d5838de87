"""The fold loop on a real event log: an effect failure is retried alone and recorded; a fold
that raises stops the loop without folding anything again."""

from __future__ import annotations

import asyncio

import pytest

from actors.fold_loop import DecisionError, FoldLoop
from events.client import LocalLogClient
from events.log import EventLog
from events.types import EffectFailed, EvalStarted, Event, RoundDue


def started(n: int) -> EvalStarted:
    return EvalStarted(eval_id=f"e{n}", attempt=1, worker="w")


class Recorder:
    """A fold that answers each EvalStarted with a RoundDue, and counts what it saw."""

    def __init__(self, raise_on: str | None = None) -> None:
        self.seen: list[str] = []
        self.raise_on = raise_on

    def apply(self, event: Event) -> list[Event]:
        assert isinstance(event, EvalStarted)
        self.seen.append(event.eval_id)
        if event.eval_id == self.raise_on:
            raise KeyError("a bug in the fold")
        return [RoundDue(round=len(self.seen), block=len(self.seen), seed=event.eval_id)]


@pytest.fixture
def log(tmp_path):
    with EventLog(tmp_path / "events.duckdb") as event_log:
        yield LocalLogClient(event_log)


async def test_a_failing_effect_is_retried_alone_and_recorded(log) -> None:
    log.append([started(1), started(2)])
    fold = Recorder()
    loop = FoldLoop(log, (EvalStarted,), fold.apply, name="tester", backoff_s=(0.0,))
    calls, done = 0, asyncio.Event()

    async def on_step() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError(f"chain unreachable ({calls})")
        done.set()

    task = asyncio.create_task(loop.run_forever(0.01, on_step))
    await done.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fold.seen == ["e1", "e2"], "each input folded once: nothing was re-folded"
    failures = [e for e in log.replay(0, ["EffectFailed"]) if isinstance(e.event, EffectFailed)]
    assert [(f.event.effect, f.event.attempt, f.event.seq) for f in failures] == [
        ("on_step", 1, 2),
        ("on_step", 2, 2),
    ]
    assert "ConnectionError: chain unreachable (2)" in failures[1].event.error
    assert [r.event.seed for r in log.replay(0, ["RoundDue"])] == ["e1", "e2"]


async def test_a_fold_that_raises_stops_the_loop_naming_the_event(log) -> None:
    seqs = log.append([started(1), started(2), started(3)])
    fold = Recorder(raise_on="e2")
    loop = FoldLoop(log, (EvalStarted,), fold.apply, name="tester", batch=1, backoff_s=(0.0,))
    on_step_calls = 0

    async def on_step() -> None:
        nonlocal on_step_calls
        on_step_calls += 1

    with pytest.raises(DecisionError) as caught:
        await loop.run_forever(0.01, on_step)
    assert (caught.value.name, caught.value.seq, caught.value.event_type) == (
        "tester",
        seqs[1],
        "EvalStarted",
    )
    assert "fix the fold" in str(caught.value)
    assert fold.seen == ["e1", "e2"], "stopped at the bad event: never folded again, nor past it"
    assert loop.seq == seqs[0]
    assert on_step_calls == 1
    assert [r.event.seed for r in log.replay(0, ["RoundDue"])] == ["e1"]
    assert list(log.replay(0, ["EffectFailed"])) == [], "a bug is not an effect failure"
