"""The validator on a cluster of two raylets: a head (``arena_head``) and a fake 4xH200 eval node.

The services run and restart on the head only, so a restarted log actor opens the one log file;
evaluators and the king's server run on the eval node, and losing that node mid-eval re-runs the
eval once. The evaluator is scripted (``tests.validator.scripted_evaluator``): what is tested is
where things run and what the log records, not a measurement. The king's traffic across the two
nodes is ``test_king_across_nodes.py``'s.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from actors import supervisor
from actors.event_log import ACTOR_NAME
from actors.log_client import LogClient
from actors.placement import actor_name, evaluator_options
from actors.validator_config import ValidatorConfig
from chain.localnet import LocalSubnet
from events.types import EvalFinished, EvalQueued, EvalStarted
from harness.profile import get_profile
from tests.cluster.placed import Placed, actor_rows, node_of
from tests.fixtures.ray import TwoNodes, clear_arena_actors
from tests.validator.scripted_evaluator import ScriptedEvaluator
from tests.validator.test_actors import Validator, digest, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.chain]

KING_SERVER = actor_name("king_server")
SERVICES = (*(actor_name(role) for role in supervisor.ROLES), KING_SERVER)


def expected_nodes(two_nodes: TwoNodes) -> dict[str, str]:
    """The head for every service but the king's server, which runs where evaluators do."""
    return {**dict.fromkeys(SERVICES, two_nodes.head_id), KING_SERVER: two_nodes.eval_id}


@pytest.fixture(scope="module")
def validator(
    two_nodes: TwoNodes, local_subnet: LocalSubnet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Validator]:
    config = ValidatorConfig(
        log_path=str(tmp_path_factory.mktemp("multi_node") / "events.duckdb"),
        chain_url=local_subnet.url,
        netuid=local_subnet.netuid,
        profile=get_profile("local"),
        hotkey_uri="//Alice//validator",
        round_settle_s=0.3,
        max_eval_attempts=4,
        weights_retry_s=1.0,
    )
    clear_arena_actors()
    # The king's server as `arena validator start` starts it: what is tested here is where it
    # runs; its serving is test_king_across_nodes.py's.
    roles = (*supervisor.ROLES, "king_server")
    handles = supervisor.start(config, roles=roles, evaluator_cls=ScriptedEvaluator)
    try:
        yield Validator(config, local_subnet, LogClient(handles["event_log"], retry_s=120))
    finally:
        clear_arena_actors()


def test_sigkilled_services_come_back_where_they_ran_with_the_same_log(
    two_nodes: TwoNodes, validator: Validator
) -> None:
    before = wait_until(
        "every service alive",
        lambda: (
            (rows := actor_rows())
            and all(rows.get(n, {}).get("State") == "ALIVE" for n in SERVICES)
            and rows
        ),
    )
    assert {n: before[n]["Address"]["NodeID"] for n in SERVICES} == expected_nodes(two_nodes)
    validator.log.append(
        [EvalStarted(eval_id=f"kill-{i}", attempt=1, worker="t") for i in range(20)]
    )
    recorded = list(validator.log.replay(0))
    path = ray.get(supervisor.get("event_log").path.remote())

    for name in SERVICES:
        os.kill(before[name]["Pid"], signal.SIGKILL)

    def restarted() -> dict | None:
        rows = actor_rows()
        back = all(
            rows[n]["State"] == "ALIVE" and rows[n]["Pid"] != before[n]["Pid"] for n in SERVICES
        )
        return rows if back else None

    after = wait_until("every service restarted", restarted)
    assert {n: after[n]["Address"]["NodeID"] for n in SERVICES} == expected_nodes(two_nodes)
    assert all(after[n]["NumRestarts"] >= 1 for n in SERVICES)
    assert ray.get(supervisor.get("event_log").path.remote()) == path
    assert list(validator.log.replay(0))[: len(recorded)] == recorded
    # The restarted scheduler and crown keeper re-folded the log: a retried append is a no-op.
    seqs = validator.log.append([EvalStarted(eval_id="kill-0", attempt=1, worker="t")])
    assert seqs == [recorded[-20].seq]


def test_an_evaluator_asks_for_and_gets_the_gpu_node(two_nodes: TwoNodes) -> None:
    for profile in ("local", "sn-h200"):
        probe = ray.remote(Placed).options(**evaluator_options(get_profile(profile))).remote()
        assert ray.get(probe.node_id.remote(), timeout=120) == two_nodes.eval_id, profile
        ray.kill(probe)


def test_losing_the_eval_node_mid_eval_runs_the_eval_again_once(
    two_nodes: TwoNodes, validator: Validator
) -> None:
    validator.commit((0, "hang-once", 1))
    queued = wait_until(
        "the commitment to be queued",
        lambda: [e for e in validator.events(EvalQueued) if e.digest == digest(1)],
    )
    eval_id = queued[0].eval_id
    first = wait_until(
        "the first attempt to start",
        lambda: [e for e in validator.events(EvalStarted) if e.eval_id == eval_id],
    )
    assert node_of(first[0].worker) == two_nodes.eval_id

    two_nodes.remove_eval_node()
    two_nodes.add_eval_node()

    finished = wait_until(
        "the eval to finish",
        lambda: [e for e in validator.events(EvalFinished) if e.eval_id == eval_id],
    )
    started = [e for e in validator.events(EvalStarted) if e.eval_id == eval_id]
    # An attempt dispatched before Ray marked the old node dead dies unstarted, so the attempt
    # that finished may be the 2nd or a later one; either way each ran once.
    attempts = [e.attempt for e in started]
    assert attempts[0] == 1 and len(attempts) == 2 and attempts[1] > 1
    assert node_of(started[1].worker) == two_nodes.eval_id
    assert len(finished) == 1 and finished[0].verdict == "pass"
    assert [e.eval_id for e in validator.events(EvalQueued) if e.digest == digest(1)] == [eval_id]


def test_a_restarted_log_actor_refuses_where_its_log_is_gone(
    validator: Validator, tmp_path: Path
) -> None:
    log = supervisor.get("event_log")
    path = Path(ray.get(log.path.remote()))
    for name in supervisor.ROLES[1:]:
        ray.kill(supervisor.get(name), no_restart=True)
    moved = {p: tmp_path / p.name for p in path.parent.iterdir()}
    pid = actor_rows()[ACTOR_NAME]["Pid"]
    for src, dst in moved.items():
        src.rename(dst)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ray.exceptions.RayActorError, match="finds no log"):
        ray.get(log.path.remote())
    assert not path.exists()
    for src, dst in moved.items():
        dst.rename(src)
