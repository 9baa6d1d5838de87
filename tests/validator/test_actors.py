"""Scheduler and CrownKeeper as Ray actors on the real chain runtime, with a scripted evaluator.

The evaluator's outcome is written in the image name (see ``scripted_evaluator``), so these
tests exercise what the validator's own actors do, fast: rounds, dispatch of a round to one
evaluator, deaths and retries, the crown, weights on chain, and restarts that re-derive
everything without a duplicate.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ray

from actors import supervisor
from actors.log_client import LogClient
from actors.scheduler import evaluator_name
from actors.validator_config import ValidatorConfig
from chain.client import ChainClient
from chain.localnet import LocalSubnet
from chain.weights import read_weights
from events.types import (
    CrownDefended,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    Event,
    ImageInspected,
    KingCrowned,
    RoundDecided,
    RoundOpened,
    SubmissionCommitted,
    SubmissionSkipped,
    WeightsSet,
)
from harness.profile import get_profile
from rules.queue_policy import eval_id_for
from tests.fixtures.ray import clear_arena_actors
from tests.validator.scripted_evaluator import ScriptedEvaluator

pytestmark = [pytest.mark.ray, pytest.mark.chain]

DEADLINE_S = 120.0


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# Eval ids derive from (digest, round): a fresh salt per session keeps them fresh too.
SALT = uuid.uuid4().hex


def digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(f"{SALT}/{n}".encode()).hexdigest()


class Validator:
    def __init__(self, config: ValidatorConfig, subnet: LocalSubnet, log: LogClient) -> None:
        self.config = config
        self.subnet = subnet
        self.log = log
        self.chain = ChainClient(subnet.url)
        self.uids = [
            self.chain.query("SubtensorModule", "Uids", [subnet.netuid, k.ss58_address])
            for k in subnet.miners
        ]
        self.block = 1000

    def commit(self, *commitments: tuple[int, str, int]) -> None:
        """Commit scripted images ``(miner, behaviour, n)``, in that order, in one append.

        Logs what the chain watcher would emit for each, and what the scheduler's inspection
        would log (the scripted images are in no registry): a fingerprint of the digest alone.
        One append, so the scheduler sees them all before it opens a round.
        """
        events: list[Event] = []
        for miner, behaviour, n in commitments:
            self.block += 1
            hotkey = self.subnet.miners[miner].ss58_address
            events.append(
                SubmissionCommitted(
                    netuid=self.subnet.netuid,
                    uid=self.uids[miner],
                    hotkey=hotkey,
                    block=self.block,
                    image=f"127.0.0.1:5000/scripted/{behaviour}",
                    digest=digest(n),
                )
            )
            events.append(ImageInspected(hotkey=hotkey, block=self.block, digest=digest(n)))
        self.log.append(events)

    def events(self, cls: type[Event] | None = None) -> list[Event]:
        return [r.event for r in self.log.replay(0) if cls is None or isinstance(r.event, cls)]

    def decided(self, round_no: int) -> RoundDecided | None:
        for e in self.events(RoundDecided):
            if isinstance(e, RoundDecided) and e.round == round_no:
                return e
        return None

    def idle(self) -> bool:
        """No round open and nothing queued: the log stops growing until a new commitment."""
        status = ray.get(supervisor.get("scheduler").status.remote())
        return not status["open"] and not status["queue"]

    def chain_weights(self) -> dict[int, float]:
        return read_weights(self.chain, self.subnet.netuid, self.subnet.validator.ss58_address)

    def hotkey(self, miner: int) -> str:
        return self.subnet.miners[miner].ss58_address


@pytest.fixture(scope="module")
def validator(
    ray_cluster: dict, local_subnet: LocalSubnet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Validator]:
    assert len(local_subnet.miners) >= 4, "these tests script four miners"
    tmp = tmp_path_factory.mktemp("validator")
    config = ValidatorConfig(
        log_path=str(tmp / "events.duckdb"),
        chain_url=local_subnet.url,
        netuid=local_subnet.netuid,
        profile=get_profile("local"),
        hotkey_uri="//Alice//validator",
        round_settle_s=0.3,
        max_eval_attempts=2,
        weights_retry_s=1.0,
    )
    clear_arena_actors()
    handles = supervisor.start(
        config, roles=("scheduler", "crown_keeper"), evaluator_cls=ScriptedEvaluator
    )
    try:
        yield Validator(config, local_subnet, LogClient(handles["event_log"]))
    finally:
        supervisor.stop()


def test_round_crowns_the_fastest_and_retries_an_evaluator_that_died(validator: Validator) -> None:
    v = validator
    v.commit((0, "score-0.10", 1), (1, "score-0.30", 2), (2, "fail", 3), (3, "crash-once", 4))
    wait_until("round 1 decided", lambda: v.decided(1))

    crowned = [e for e in v.events(KingCrowned) if isinstance(e, KingCrowned)]
    assert [c.hotkey for c in crowned] == [v.hotkey(1)]
    finished = {e.hotkey: e for e in v.events(EvalFinished) if isinstance(e, EvalFinished)}
    assert finished[v.hotkey(2)].verdict == "fail"
    assert finished[v.hotkey(2)].reason == "garbage after a correct prefix"
    # The evaluator of miner 3 died once; the retry, same eval id, finished exactly once.
    crashed = finished[v.hotkey(3)]
    assert crashed.verdict == "pass"
    starts = [e for e in v.events(EvalStarted) if e.key.startswith(crashed.eval_id)]
    assert len(starts) == 2
    assert len([e for e in v.events(EvalFinished) if e.key == crashed.eval_id]) == 1
    defended = {e.challenger_eval_id for e in v.events(CrownDefended)}
    assert defended == {finished[v.hotkey(0)].eval_id, crashed.eval_id}

    king_uid = v.uids[1]
    # The crown keeper logs WeightsSet after the chain included the weights: wait for the log.
    wait_until(
        "the king's weights set, as logged",
        lambda: [
            e
            for e in v.events(WeightsSet)
            if isinstance(e, WeightsSet) and e.success and e.uids == [king_uid]
        ],
    )
    assert v.chain_weights() == {king_uid: 65535.0}
    sets = [e for e in v.events(WeightsSet) if isinstance(e, WeightsSet)]
    assert sets and sets[-1].success and sets[-1].uids == [king_uid]
    assert sets[-1].reason_eval_id == finished[v.hotkey(1)].eval_id


def test_evals_that_keep_dying_end_as_errors_with_a_reason(validator: Validator) -> None:
    v = validator
    v.commit((0, "crash", 5))
    decided = wait_until("round 2 decided", lambda: v.decided(2))
    assert decided.king_hotkey == v.hotkey(1), "the king was re-measured and kept the crown"
    errored = [e for e in v.events(EvalFinished) if e.key == eval_id_for(digest(5), 2)]
    assert len(errored) == 1
    assert errored[0].verdict == "error"
    assert "evaluator died in all 2 attempts" in errored[0].reason
    remeasured = [
        e
        for e in v.events(EvalFinished)
        if isinstance(e, EvalFinished) and e.role == "king" and e.hotkey == v.hotkey(1)
    ]
    assert len(remeasured) == 1


def test_an_errored_challenger_is_retried_in_later_rounds_then_skipped(
    validator: Validator,
) -> None:
    v = validator
    skipped = wait_until(
        "the crashing submission to be given up",
        lambda: [e for e in v.events(SubmissionSkipped) if e.hotkey == v.hotkey(0)],
    )
    assert "validator's side 3 times" in skipped[0].reason
    retried = [e for e in v.events(EvalQueued) if e.digest == digest(5)]
    assert [e.eval_id for e in retried] == [eval_id_for(digest(5), r) for r in (2, 3, 4)]


def test_a_faster_challenger_takes_the_crown_and_the_weights(validator: Validator) -> None:
    v = validator
    v.commit((2, "score-0.50", 6))

    def crowned_by_2() -> bool:
        return any(
            isinstance(e, RoundDecided) and e.king_hotkey == v.hotkey(2)
            for e in v.events(RoundDecided)
        )

    wait_until("miner 2 crowned", crowned_by_2)
    new_king = v.uids[2]
    assert wait_until("weights moved", lambda: v.chain_weights() == {new_king: 65535.0})


def test_a_round_runs_on_one_evaluator_and_a_death_reruns_only_its_unfinished_evals(
    validator: Validator,
) -> None:
    v = validator
    v.commit((0, "score-0.05", 7), (1, "crash-once", 8), (3, "score-0.02", 9))

    def opened() -> RoundOpened | None:
        for e in v.events(RoundOpened):
            if isinstance(e, RoundOpened) and eval_id_for(digest(7), e.round) in e.eval_ids:
                return e
        return None

    round_ = wait_until("the round of the three commitments to open", opened)
    king, first, crashed, last = round_.eval_ids
    assert [first, crashed, last] == [eval_id_for(digest(n), round_.round) for n in (7, 8, 9)]
    wait_until(f"round {round_.round} decided", lambda: v.decided(round_.round))

    starts = [e for e in v.events(EvalStarted) if e.eval_id in round_.eval_ids]
    # One evaluator started the whole round (the king's re-measurement first)...
    assert {e.eval_id: e.worker for e in starts if e.attempt == 1} == dict.fromkeys(
        round_.eval_ids, evaluator_name(round_.round, 1)
    )
    # ...died on the crashing eval, and a new one got only the evals without a verdict then.
    assert {e.eval_id: e.worker for e in starts if e.attempt == 2} == dict.fromkeys(
        [crashed, last], evaluator_name(round_.round, 2)
    )
    assert len(starts) == len(round_.eval_ids) + 2
    finished = [e for e in v.events(EvalFinished) if e.eval_id in round_.eval_ids]
    assert sorted(e.eval_id for e in finished) == sorted(round_.eval_ids)
    assert {e.eval_id: e.verdict for e in finished} == dict.fromkeys(round_.eval_ids, "pass")
    assert king in {e.eval_id for e in finished if e.role == "king"}


def test_restarted_actors_rederive_everything_and_append_nothing(validator: Validator) -> None:
    v = validator
    wait_until("weights recorded", lambda: len(v.events(WeightsSet)) >= 2)
    wait_until("the scheduler to be idle", lambda: v.idle())
    before = [(type(e).__name__, e.key) for e in v.events()]
    for role in ("scheduler", "crown_keeper"):
        handle = supervisor.get(role)
        assert handle is not None
        ray.kill(handle, no_restart=False)

    def caught_up() -> bool:
        try:
            sched, crown = (
                ray.get(supervisor.get(role).status.remote(), timeout=5)
                for role in ("scheduler", "crown_keeper")
            )
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return False
        # The crown keeper has also compared the chain's weights with the king's.
        return sched["caught_up"] and crown["caught_up"] and crown["weights_in_place"]

    wait_until("restarted actors caught up", caught_up)
    restarts = {s.role: s.restarts for s in supervisor.status()}
    assert restarts["scheduler"] == restarts["crown_keeper"] == 1
    after = [(type(e).__name__, e.key) for e in v.events()]
    assert after == before, "a restart re-derived a decision differently or twice"
    assert len(set(after)) == len(after)
