"""The scheduling policy, on plain events: FIFO, dedupe, supersede, king re-measure, determinism."""

from __future__ import annotations

from actors.queue_policy import QueueState, eval_id_for, fold_queue
from events.types import (
    EvalFinished,
    EvalQueued,
    Event,
    MinerDeregistered,
    RoundDecided,
    RoundDue,
    RoundOpened,
    SubmissionCommitted,
    SubmissionSkipped,
)


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


def commit(hotkey: str, block: int, d: int, uid: int = 1) -> SubmissionCommitted:
    return SubmissionCommitted(
        netuid=2, uid=uid, hotkey=hotkey, block=block, image="127.0.0.1:5000/m", digest=digest(d)
    )


def due(round_no: int, block: int = 100) -> RoundDue:
    return RoundDue(round=round_no, block=block, seed=f"0x{block:064x}")


def finished(q: EvalQueued, verdict: str = "pass", score: float = 0.1) -> EvalFinished:
    return EvalFinished(
        eval_id=q.eval_id,
        hotkey=q.hotkey,
        digest=q.digest,
        verdict=verdict,  # type: ignore[arg-type]
        reason="",
        score=score,
        noise=0.0,
        metrics={},
        role=q.role,
    )


def queued(out: list[Event]) -> list[EvalQueued]:
    return [e for e in out if isinstance(e, EvalQueued)]


def skipped(out: list[Event]) -> dict[str, str]:
    return {f"{e.hotkey}@{e.block}": e.reason for e in out if isinstance(e, SubmissionSkipped)}


def test_fifo_by_commit_block_then_hotkey() -> None:
    state, out = fold_queue(
        [commit("c", 12, 3), commit("a", 11, 1), commit("b", 11, 2), due(1)],
        challengers_per_round=2,
    )
    assert [q.hotkey for q in queued(out)] == ["a", "b"]
    assert [s.hotkey for s in state.queue()] == ["c"]


def test_round_opened_lists_its_evals_and_seed() -> None:
    _, out = fold_queue([commit("a", 11, 1), due(1, block=40)])
    opened = [e for e in out if isinstance(e, RoundOpened)]
    assert len(opened) == 1
    assert opened[0].eval_ids == [q.eval_id for q in queued(out)]
    assert queued(out)[0].round_seed == opened[0].seed == f"0x{40:064x}"
    assert out[0] is opened[0], "RoundOpened comes before its EvalQueued events"


def test_identical_digest_is_evaluated_once() -> None:
    state, out = fold_queue([commit("a", 11, 7), commit("b", 12, 7), due(1)])
    assert [q.hotkey for q in queued(out)] == ["a"]
    assert "duplicate" in skipped(out)["b@12"]
    q = queued(out)[0]
    state.apply(finished(q))
    later = state.apply(commit("c", 20, 7))
    assert "already evaluated" in skipped(later)["c@20"]


def test_errored_digest_is_not_taken_as_judged() -> None:
    state, out = fold_queue([commit("a", 11, 7), due(1)])
    state.apply(finished(queued(out)[0], verdict="error", score=0.0))
    assert digest(7) not in state.judged
    assert [(s.hotkey, s.block) for s in state.queue()] == [("a", 11)]


def test_newer_commitment_supersedes_the_queued_one() -> None:
    state, out = fold_queue([commit("a", 11, 1), commit("a", 13, 2), due(1)])
    assert [q.digest for q in queued(out)] == [digest(2)]
    assert "superseded" in skipped(out)["a@11"]


def test_an_older_commitment_arriving_late_changes_nothing() -> None:
    state, out = fold_queue([commit("a", 13, 2), commit("a", 11, 1)])
    assert out == []
    assert state.queue()[0].digest == digest(2)


def test_one_submission_per_hotkey_at_a_time() -> None:
    state, out = fold_queue([commit("a", 11, 1), due(1), commit("a", 14, 2)])
    assert [q.digest for q in queued(out)] == [digest(1)]
    assert [s.digest for s in state.queue()] == [digest(2)]
    assert [q.digest for q in state.in_flight()] == [digest(1)]
    # no second round while the first is open, even when due
    assert state.apply(due(2)) == []


def test_rounds_wait_for_the_crown_keeper_and_remeasure_the_king() -> None:
    state, out = fold_queue([commit("a", 11, 1), due(1)])
    (qa,) = queued(out)
    state.apply(commit("b", 12, 2))
    state.apply(finished(qa))
    assert state.apply(due(2)) == [], "round 1 is not decided yet"
    state.apply(
        RoundDecided(
            round=1,
            king_hotkey="a",
            king_uid=1,
            king_digest=digest(1),
            king_image="127.0.0.1:5000/m",
            king_score=0.1,
            king_submitted_block=11,
        )
    )
    out2 = state.apply(due(2))
    roles = {q.hotkey: q.role for q in queued(out2)}
    assert roles == {"a": "king", "b": "challenger"}
    assert {q.eval_id for q in queued(out2)} == {
        eval_id_for(digest(1), 2),
        eval_id_for(digest(2), 2),
    }


def test_due_for_the_wrong_round_is_ignored() -> None:
    state, out = fold_queue([commit("a", 11, 1), due(2)])
    assert out == []
    assert state.round_due()


def test_deregistered_miner_leaves_the_queue_and_the_throne() -> None:
    state, _ = fold_queue([commit("a", 11, 1)])
    out = state.apply(MinerDeregistered(netuid=2, uid=1, hotkey="a", block=20))
    assert "deregistered" in skipped(out)["a@11"]
    assert not state.round_due()


def test_a_replay_rederives_the_same_decisions() -> None:
    history: list[Event] = [commit("a", 11, 1), commit("b", 11, 2), due(1)]
    s1, out1 = fold_queue(history)
    history += [finished(q) for q in queued(out1)]
    history += [RoundDecided(round=1, king_hotkey="b", king_digest=digest(2), king_uid=2)]
    history += [commit("c", 30, 3), due(2, block=31)]
    _, full = fold_queue(history)
    _, again = fold_queue(history)
    assert full == again
    assert full[: len(out1)] == out1, "a longer log never changes earlier decisions"
    assert len({e.key for e in full if isinstance(e, EvalQueued)}) == 4


def test_eval_ids_are_deterministic_and_distinct_per_round() -> None:
    assert eval_id_for(digest(1), 1) == eval_id_for(digest(1), 1)
    assert eval_id_for(digest(1), 1) != eval_id_for(digest(1), 2)
    assert eval_id_for(digest(1), 1) != eval_id_for(digest(2), 1)


def test_unrelated_finish_is_ignored() -> None:
    state = QueueState()
    q = EvalQueued(
        eval_id="r9-x",
        hotkey="z",
        image="i",
        digest=digest(9),
        role="challenger",
        submitted_block=1,
        round_seed="s",
    )
    assert state.apply(finished(q)) == []
    assert state.judged == {}


def test_a_validator_side_error_requeues_the_challenger_a_bounded_number_of_times() -> None:
    state = QueueState(error_retries=1)
    state.apply(commit("a", 11, 7))
    (q1,) = queued(state.apply(due(1)))
    assert state.apply(finished(q1, verdict="error", score=0.0)) == []
    state.apply(RoundDecided(round=1))
    (q2,) = queued(state.apply(due(2)))
    assert (q2.hotkey, q2.digest) == ("a", digest(7)) and q2.eval_id != q1.eval_id
    out = state.apply(finished(q2, verdict="error", score=0.0))
    assert "validator's side 2 times" in skipped(out)["a@11"]
    state.apply(RoundDecided(round=2))
    assert not state.round_due()


def test_a_kings_error_is_not_requeued_as_a_challenger() -> None:
    state, out = fold_queue([commit("a", 11, 1), due(1)])
    state.apply(finished(queued(out)[0]))
    state.apply(
        RoundDecided(round=1, king_hotkey="a", king_digest=digest(1), king_uid=1, king_image="i")
    )
    state.apply(commit("b", 12, 2))
    out2 = state.apply(due(2))
    king_eval = next(q for q in queued(out2) if q.role == "king")
    assert state.apply(finished(king_eval, verdict="error", score=0.0)) == []
    assert state.queue() == []
