"""The whole local subnet, end to end, on real parts, interrupted twice in the middle of its round.

One run is shared by every test here (it takes minutes on 2 cores): chopsticks running the
subtensor runtime, a fresh subnet with a validator and three miners (reference, faster honest,
cheater) committing real images through real extrinsics, the validator's actors on Ray, real
evaluations in Docker with vLLM CPU, the crown, weights on chain. One Evaluator judges a whole
round (its evals against one baseline kept up); while the round runs:
1. the worker process of that Evaluator is killed with SIGKILL in the middle of an eval (the
   scheduler hands the round's unfinished evals to a new one);
2. later, the whole Ray cluster is stopped in the middle of another eval and started again.
The tests then check that nothing was lost or duplicated, that each interrupted eval finished
exactly once, and that the outcome is the one the decisions re-derive from the log's inputs.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import ray

from actors import supervisor
from chain.chopsticks import free_port
from cli.subnet import WINNER, LocalSubnetRun, Outcome, SubnetError
from events.types import (
    BaselineMeasured,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    Event,
    KingCrowned,
    SubmissionCommitted,
)
from rules.crown_policy import INPUT_TYPES as CROWN_INPUTS
from rules.crown_policy import fold_crown
from rules.queue_policy import INPUT_TYPES as QUEUE_INPUTS
from rules.queue_policy import fold_queue
from serve_apps.dashboard import dashboard_app
from tests.fixtures.browser import chromium, rendered_dom, screenshot
from tests.fixtures.ray import clear_arena_actors, start_local_ray
from tests.serve.conftest import serve_in_thread

# The shared run (set up inside the first test) takes tens of minutes on 2 cores.
pytestmark = [
    pytest.mark.chain,
    pytest.mark.docker,
    pytest.mark.ray,
    pytest.mark.vllm,
    pytest.mark.timeout(3600),
]

ROUND_TIMEOUT_S = 2400.0


def wait_until(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class Interrupted:
    run: LocalSubnetRun
    outcome: Outcome
    killed_eval: str = ""
    killed_pid: int = 0
    cluster_stopped_during: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def events(self) -> list[Event]:
        return self.run.events()

    def of(self, cls: type[Event]) -> list[Any]:
        return [e for e in self.events() if isinstance(e, cls)]


def _restart_ray() -> None:
    """Stop the whole local Ray cluster (every actor dies), then start it as the fixture did."""
    ray.shutdown()
    start_local_ray()


def _started_with_baseline(run: LocalSubnetRun, skip: set[str]) -> str | None:
    """An eval id that has measured its first baseline and is not finished (not in ``skip``)."""
    events = run.events()
    finished = {e.eval_id for e in events if isinstance(e, EvalFinished)}
    for e in events:
        if (
            isinstance(e, BaselineMeasured)
            and e.phase == "before"
            and e.eval_id not in finished | skip
        ):
            return e.eval_id
    return None


def _watch_for(run: LocalSubnetRun, what: str, skip: set[str], timeout_s: float) -> str:
    """Print the run's progress until an eval (not in ``skip``) is past its first baseline."""
    found: list[str] = []

    def done(_: list[Event]) -> Outcome | None:
        eval_id = _started_with_baseline(run, skip)
        if eval_id is None:
            return None
        found.append(eval_id)
        return Outcome(True, eval_id)

    outcome = run.watch(done, timeout_s)
    assert outcome.ok, f"waiting for {what}: {outcome.reason}"
    return found[0]


@pytest.fixture(scope="module")
def interrupted(
    ray_cluster: dict, chain_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Interrupted]:
    run = LocalSubnetRun(tmp_path_factory.mktemp("subnet"))
    started = time.monotonic()
    try:
        try:
            run.check_engine()
            run.load_images()
        except SubnetError as exc:
            pytest.fail(f"the local subnet cannot run: {exc}", pytrace=False)
        run.start_chain(chain_url)
        clear_arena_actors()
        run.start_validator()
        run.commit_miners()
        result = Interrupted(run, Outcome(False, "not run"))

        # 1. SIGKILL the round's evaluator once one of its evals has measured its first baseline.
        eval_id = _watch_for(run, "an eval past its first baseline", set(), 1800)
        scheduler = supervisor.get("scheduler")
        name = ray.get(scheduler.running_evaluators.remote())[eval_id]
        pid = wait_until(f"the pid of {name}", lambda: supervisor.pid_of(name), 30)
        os.kill(pid, signal.SIGKILL)
        result.killed_eval, result.killed_pid = eval_id, pid
        run.say(f"[red]SIGKILL[/] evaluator {name} (pid {pid}) in the middle of {eval_id}")

        # 2. Stop the whole Ray cluster while another eval is running, then start it again.
        other = _watch_for(run, "a second eval past its first baseline", {eval_id}, 1800)
        run.say(f"[red]stopping the Ray cluster[/] in the middle of {other}")
        _restart_ray()
        supervisor.start(run.config)
        from actors.log_client import LogClient

        run.log = LogClient()
        result.cluster_stopped_during = other
        run.say("Ray cluster started again; the validator's actors rebuild from the log")

        result.outcome = run.watch(run.outcome, ROUND_TIMEOUT_S)
        result.seconds = time.monotonic() - started
        run.summary(result.outcome)
        run.say(f"end-to-end run took {result.seconds:.0f} s")
        yield result
    finally:
        supervisor.stop()
        if run.client is not None:
            run.client.close()
        _remove_my_sandboxes(run)


def _remove_my_sandboxes(run: LocalSubnetRun) -> None:
    """Sandboxes of the evaluators this run killed: their owners die shortly after the kill."""
    import docker

    from harness.runner import LABEL, remove_leftovers

    client = docker.from_env()
    wait_until(
        "the killed evaluators' sandboxes to be removed",
        lambda: (
            remove_leftovers(client) >= 0
            and not client.containers.list(all=True, filters={"label": LABEL, "name": "arena-r"})
        ),
        60,
    )


def test_the_faster_honest_miner_is_crowned(interrupted: Interrupted) -> None:
    assert interrupted.outcome.ok, interrupted.outcome.reason
    crowned = interrupted.of(KingCrowned)
    assert crowned[-1].hotkey == interrupted.run.hotkeys[WINNER]


def test_the_cheater_is_disqualified_with_its_reason(interrupted: Interrupted) -> None:
    cheater = interrupted.run.hotkeys["cheater"]
    (result,) = [e for e in interrupted.of(EvalFinished) if e.hotkey == cheater]
    assert result.verdict == "fail"
    assert result.reason, "a disqualification must say why"
    assert result.score == 0.0


def test_weights_read_back_from_chain_give_the_king_all_weight(interrupted: Interrupted) -> None:
    run = interrupted.run
    assert run.chain_weights() == {run.uids[WINNER]: 65535.0}


def test_the_sql_views_tell_the_same_story(interrupted: Interrupted) -> None:
    run = interrupted.run
    _, kings = run.log.sql(
        "SELECT hotkey FROM kings WHERE change = 'crowned' ORDER BY seq DESC LIMIT 1"
    )
    assert kings == [(run.hotkeys[WINNER],)]
    _, verdicts = run.log.sql("SELECT hotkey, verdict, reason FROM evaluations")
    by_hotkey = {h: (v, r) for h, v, r in verdicts}
    assert by_hotkey[run.hotkeys["cheater"]][0] == "fail"
    assert by_hotkey[run.hotkeys[WINNER]][0] == "pass"
    _, weights = run.log.sql(
        "SELECT uids, weights FROM weights WHERE success ORDER BY seq DESC LIMIT 1"
    )
    assert weights == [([run.uids[WINNER]], [65535])]


def test_no_event_lost_or_duplicated(interrupted: Interrupted) -> None:
    run = interrupted.run
    records = list(run.log.replay(0))
    assert [r.seq for r in records] == list(range(1, len(records) + 1)), "seq has gaps"
    keys = Counter((type(r.event).__name__, r.event.key) for r in records)
    assert max(keys.values()) == 1
    submitted = {e.hotkey for e in interrupted.of(SubmissionCommitted)}
    assert submitted == set(run.hotkeys.values()), "a commitment on chain is missing"
    queued = Counter(e.eval_id for e in interrupted.of(EvalQueued))
    finished = Counter(e.eval_id for e in interrupted.of(EvalFinished))
    assert queued == finished, "every queued eval finished exactly once"


def test_each_interrupted_eval_completed_exactly_once(interrupted: Interrupted) -> None:
    for eval_id in (interrupted.killed_eval, interrupted.cluster_stopped_during):
        done = [e for e in interrupted.of(EvalFinished) if e.eval_id == eval_id]
        assert len(done) == 1
        assert done[0].verdict in ("pass", "fail"), f"{eval_id} ended as {done[0].reason}"
        assert [e for e in interrupted.of(EvalStarted) if e.eval_id == eval_id]


def test_decisions_are_what_an_uninterrupted_fold_of_the_inputs_derives(
    interrupted: Interrupted,
) -> None:
    """Same inputs, no interruption: the fold re-derives exactly the decisions that were logged."""
    events = interrupted.events()
    queue_inputs = [e for e in events if isinstance(e, QUEUE_INPUTS)]
    _, queue_decisions = fold_queue(queue_inputs)
    crown_inputs = [e for e in events if isinstance(e, CROWN_INPUTS)]
    crown_state, crown_decisions = fold_crown(crown_inputs)
    derived = {(type(e).__name__, e.key) for e in queue_decisions + crown_decisions}
    kinds = {type(e) for e in queue_decisions + crown_decisions} | {KingCrowned, EvalQueued}
    logged = {(type(e).__name__, e.key) for e in events if type(e) in kinds}
    assert derived == logged
    assert crown_state.king is not None
    assert crown_state.king.hotkey == interrupted.run.hotkeys[WINNER]


def test_the_dashboard_shows_the_run_in_a_browser(interrupted: Interrupted, tmp_path: Path) -> None:
    """The dashboard over the run's own log (through the log actor) and the evidence beside it,
    as the gateway serves it, rendered by headless chromium."""
    chromium()
    run = interrupted.run
    crowning = interrupted.of(KingCrowned)[-1]
    finished = interrupted.of(EvalFinished)
    with serve_in_thread(dashboard_app(run.log), free_port()) as url:
        overview = rendered_dom(f"{url}/dashboard/")
        page = rendered_dom(f"{url}/dashboard/eval/{crowning.eval_id}")
        screenshot(f"{url}/dashboard/", tmp_path / "dashboard.png")
        screenshot(f"{url}/dashboard/eval/{crowning.eval_id}", tmp_path / "eval.png")
    text = unescape(overview)
    assert run.hotkeys[WINNER] in text  # the king
    for result in finished[-20:]:  # the overview lists the 20 newest
        assert f">{result.verdict}</span>" in overview
        assert f"{result.score:.4f}" in text and result.eval_id in text
    assert "<script" not in overview
    # The crowning eval's page: its metrics and plots, and from its evidence the gate's details
    # and the TTFT/ITL distributions.
    assert "Metrics per level" in page and "max argmax gap" in page
    assert page.count("<svg") == 5, "four per-level plots and the distributions"
