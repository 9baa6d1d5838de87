"""The scheduling policy, on plain events: FIFO, copies, supersede, king re-measure, determinism."""

from __future__ import annotations

import pytest

from events.types import (
    EvalFinished,
    EvalQueued,
    Event,
    ImageInspected,
    MinerDeregistered,
    RoundDecided,
    RoundDue,
    RoundOpened,
    SubmissionCommitted,
    SubmissionSkipped,
)
from rules.queue_policy import QueueState, eval_id_for, fold_queue, refusal_reason


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


def commit(hotkey: str, block: int, d: int, uid: int = 1) -> SubmissionCommitted:
    return SubmissionCommitted(
        netuid=2, uid=uid, hotkey=hotkey, block=block, image="127.0.0.1:5000/m", digest=digest(d)
    )


def inspected(
    c: SubmissionCommitted, config: str | None = None, runtime: str | None = None
) -> ImageInspected:
    """The scheduler's inspection of ``c``; by default a fingerprint of its own digest."""
    return ImageInspected(
        hotkey=c.hotkey,
        block=c.block,
        digest=c.digest,
        size_bytes=1000,
        config_digest=f"config-of-{c.digest}" if config is None else config,
        runtime_digest=f"runtime-of-{c.digest}" if runtime is None else runtime,
    )


def refused(c: SubmissionCommitted, code: str) -> ImageInspected:
    """The scheduler's inspection of ``c`` when the registry refused the image for good."""
    return ImageInspected(
        hotkey=c.hotkey, block=c.block, digest=c.digest, refused=code, error=f"{code} in words"
    )


def submitted(hotkey: str, block: int, d: int, uid: int = 1) -> list[Event]:
    """A commitment and its inspection, as the log holds them once the scheduler read the image."""
    c = commit(hotkey, block, d, uid)
    return [c, inspected(c)]


def apply_all(state: QueueState, events: list[Event]) -> list[Event]:
    return [decision for e in events for decision in state.apply(e)]


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
        [*submitted("c", 12, 3), *submitted("a", 11, 1), *submitted("b", 11, 2), due(1)],
        challengers_per_round=2,
    )
    assert [q.hotkey for q in queued(out)] == ["a", "b"]
    assert [s.hotkey for s in state.queue()] == ["c"]


def test_round_opened_lists_its_evals_and_seed() -> None:
    _, out = fold_queue([*submitted("a", 11, 1), due(1, block=40)])
    opened = [e for e in out if isinstance(e, RoundOpened)]
    assert len(opened) == 1
    assert opened[0].eval_ids == [q.eval_id for q in queued(out)]
    assert queued(out)[0].round_seed == opened[0].seed == f"0x{40:064x}"
    assert out[0] is opened[0], "RoundOpened comes before its EvalQueued events"


def test_identical_digest_is_evaluated_once() -> None:
    state, out = fold_queue([*submitted("a", 11, 7), *submitted("b", 12, 7), due(1)])
    assert [q.hotkey for q in queued(out)] == ["a"]
    assert skipped(out)["b@12"] == "copy_of a@11 (same manifest digest)"
    q = queued(out)[0]
    state.apply(finished(q))
    later = state.apply(commit("c", 20, 7))
    assert "already evaluated" in skipped(later)["c@20"]


def test_errored_digest_is_not_taken_as_judged() -> None:
    state, out = fold_queue([*submitted("a", 11, 7), due(1)])
    state.apply(finished(queued(out)[0], verdict="error", score=0.0))
    assert digest(7) not in state.judged
    assert [(s.hotkey, s.block) for s in state.queue()] == [("a", 11)]


def test_newer_commitment_supersedes_the_queued_one() -> None:
    state, out = fold_queue([*submitted("a", 11, 1), *submitted("a", 13, 2), due(1)])
    assert [q.digest for q in queued(out)] == [digest(2)]
    assert "superseded" in skipped(out)["a@11"]


def test_an_older_commitment_arriving_late_changes_nothing() -> None:
    state, out = fold_queue([commit("a", 13, 2), commit("a", 11, 1)])
    assert out == []
    assert state.queue()[0].digest == digest(2)


def test_one_submission_per_hotkey_at_a_time() -> None:
    state, out = fold_queue([*submitted("a", 11, 1), due(1), *submitted("a", 14, 2)])
    assert [q.digest for q in queued(out)] == [digest(1)]
    assert [s.digest for s in state.queue()] == [digest(2)]
    assert [q.digest for q in state.in_flight()] == [digest(1)]
    # no second round while the first is open, even when due
    assert state.apply(due(2)) == []


def test_rounds_wait_for_the_crown_keeper_and_remeasure_the_king() -> None:
    state, out = fold_queue([*submitted("a", 11, 1), due(1)])
    (qa,) = queued(out)
    apply_all(state, submitted("b", 12, 2))
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
    state, out = fold_queue([*submitted("a", 11, 1), due(2)])
    assert out == []
    assert state.round_due(100)


def test_deregistered_miner_leaves_the_queue_and_the_throne() -> None:
    state, _ = fold_queue(submitted("a", 11, 1))
    out = state.apply(MinerDeregistered(netuid=2, uid=1, hotkey="a", block=20))
    assert "deregistered" in skipped(out)["a@11"]
    assert not state.round_due(100)


def test_a_replay_rederives_the_same_decisions() -> None:
    history: list[Event] = [*submitted("a", 11, 1), *submitted("b", 11, 2), due(1)]
    s1, out1 = fold_queue(history)
    history += [finished(q) for q in queued(out1)]
    history += [RoundDecided(round=1, king_hotkey="b", king_digest=digest(2), king_uid=2)]
    history += [*submitted("c", 30, 3), due(2, block=31)]
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
    apply_all(state, submitted("a", 11, 7))
    (q1,) = queued(state.apply(due(1)))
    assert state.apply(finished(q1, verdict="error", score=0.0)) == []
    state.apply(RoundDecided(round=1))
    (q2,) = queued(state.apply(due(2)))
    assert (q2.hotkey, q2.digest) == ("a", digest(7)) and q2.eval_id != q1.eval_id
    out = state.apply(finished(q2, verdict="error", score=0.0))
    assert "validator's side 2 times" in skipped(out)["a@11"]
    state.apply(RoundDecided(round=2))
    assert not state.round_due(100)


def test_a_kings_error_is_not_requeued_as_a_challenger() -> None:
    state, out = fold_queue([*submitted("a", 11, 1), due(1)])
    state.apply(finished(queued(out)[0]))
    state.apply(
        RoundDecided(round=1, king_hotkey="a", king_digest=digest(1), king_uid=1, king_image="i")
    )
    apply_all(state, submitted("b", 12, 2))
    out2 = state.apply(due(2))
    king_eval = next(q for q in queued(out2) if q.role == "king")
    assert state.apply(finished(king_eval, verdict="error", score=0.0)) == []
    assert state.queue() == []


# --- inspection and copies -----------------------------------------------------------------------


def king(hotkey: str, d: int, block: int) -> RoundDecided:
    return RoundDecided(
        round=1,
        king_hotkey=hotkey,
        king_uid=1,
        king_digest=digest(d),
        king_image="127.0.0.1:5000/m",
        king_score=0.1,
        king_submitted_block=block,
    )


def test_a_round_takes_only_inspected_submissions() -> None:
    state, out = fold_queue([commit("a", 11, 1), *submitted("b", 12, 2)])
    assert [s.hotkey for s in state.uninspected()] == ["a"]
    assert [s.hotkey for s in state.ready()] == ["b"]
    out = state.apply(due(1))
    assert [q.hotkey for q in queued(out)] == ["b"], "a waits for its inspection"
    assert [s.hotkey for s in state.queue()] == ["a"]


def test_nothing_inspected_opens_no_round() -> None:
    state, _ = fold_queue([commit("a", 11, 1)])
    assert not state.round_due(100)
    assert state.apply(due(1)) == []
    state.apply(inspected(commit("a", 11, 1)))
    assert state.round_due(100)


# Every final refusal ``harness.sandbox_image.read_image`` can give (registry faults never reach
# the log: the scheduler asks again).
FINAL_REFUSALS = [
    "not_pinned",
    "manifest_not_found",
    "config_not_found",
    "digest_mismatch",
    "too_large",
    "bad_manifest",
    "bad_config",
]


@pytest.mark.parametrize("code", FINAL_REFUSALS)
def test_an_image_the_registry_refused_ends_the_submission_with_what_to_do(code: str) -> None:
    c = commit("a", 11, 1)
    state, out = fold_queue([c, refused(c, code), due(1)])
    assert skipped(out) == {"a@11": refusal_reason(code, f"{code} in words")}
    assert f"({code})" in skipped(out)["a@11"]
    assert "push the image before committing, then commit again" in skipped(out)["a@11"]
    assert queued(out) == [], "a digest pushed after the inspection is never evaluated"
    assert state.queue() == [] and not state.round_due(100)


def test_a_commitment_again_after_a_refusal_is_queued() -> None:
    first, again = commit("a", 11, 1), commit("a", 20, 1)
    history = [first, refused(first, "manifest_not_found"), again, inspected(again), due(1)]
    _, out = fold_queue(history)
    assert list(skipped(out)) == ["a@11"]
    assert [(q.hotkey, q.digest) for q in queued(out)] == [("a", digest(1))]


def test_a_refusal_of_a_superseded_commitment_ends_nothing_else() -> None:
    old, new = commit("a", 11, 1), commit("a", 13, 2)
    state, out = fold_queue([old, new, refused(old, "manifest_not_found"), inspected(new)])
    assert skipped(out) == {"a@11": "superseded by the commitment at block 13"}
    assert [s.key for s in state.ready()] == ["a@13"]


def test_a_refused_commitment_still_claims_its_digest_first() -> None:
    # a committed before pushing (refused), pushed, then committed again; b copied in between.
    a1, b, a2 = commit("a", 11, 7), commit("b", 12, 7), commit("a", 20, 7)
    state, out = fold_queue([a1, refused(a1, "manifest_not_found"), b, inspected(b), a2])
    assert skipped(out)["b@12"] == "copy_of a@11 (same manifest digest)"
    assert "a@20" not in skipped(out)
    assert [s.key for s in state.queue()] == ["a@20"]


def test_the_same_files_run_the_same_way_under_another_label_are_a_copy() -> None:
    a, b = commit("a", 11, 1), commit("b", 12, 2)
    _, out = fold_queue(
        [
            a,
            inspected(a, config="sha256:ca", runtime="sha256:r"),
            b,
            inspected(b, config="sha256:cb", runtime="sha256:r"),
            due(1),
        ]
    )
    assert skipped(out) == {"b@12": "copy_of a@11 (same layers and runtime config)"}
    assert [q.hotkey for q in queued(out)] == ["a"]


def test_the_same_files_run_another_way_are_no_copy() -> None:
    # Honest miners tuning the command line of one stock image: every layer shared.
    a, b = commit("a", 11, 1), commit("b", 12, 2)
    _, out = fold_queue(
        [
            a,
            inspected(a, config="sha256:ca", runtime="sha256:ra"),
            b,
            inspected(b, config="sha256:cb", runtime="sha256:rb"),
            due(1),
        ]
    )
    assert skipped(out) == {}
    assert [q.hotkey for q in queued(out)] == ["a", "b"]


def test_the_same_config_pushed_under_another_name_is_a_copy() -> None:
    a, b = commit("a", 11, 1), commit("b", 12, 2)
    _, out = fold_queue(
        [a, inspected(a, config="sha256:c", runtime="x"), b, inspected(b, config="sha256:c")]
    )
    assert skipped(out) == {"b@12": "copy_of a@11 (same config digest)"}


@pytest.mark.parametrize("copy_inspected_first", [True, False])
def test_the_earliest_commitment_wins_whatever_order_they_were_inspected_in(
    copy_inspected_first: bool,
) -> None:
    original, copy = commit("z", 11, 1), commit("a", 12, 2)
    inspections = [inspected(c, config=f"c{c.block}", runtime="r") for c in (original, copy)]
    if copy_inspected_first:
        inspections.reverse()
    _, out = fold_queue([copy, original, *inspections, due(1)])
    assert skipped(out) == {"a@12": "copy_of z@11 (same layers and runtime config)"}
    assert [q.hotkey for q in queued(out)] == ["z"]


def test_a_copy_of_the_king_is_skipped() -> None:
    a = commit("a", 11, 1)
    state, out = fold_queue([a, inspected(a, config="sha256:ka"), due(1)])
    state.apply(finished(queued(out)[0]))
    state.apply(king("a", 1, 11))
    b = commit("b", 30, 2)
    out2 = apply_all(state, [b, inspected(b, config="sha256:ka", runtime="other")])
    assert skipped(out2) == {"b@30": "copy_of a@11 (same config digest)"}
    assert state.queue() == []


def test_a_copy_of_a_submission_already_given_up_is_still_a_copy() -> None:
    # The original moved on (superseded) before the copy came: copying it still earns nothing.
    a1, a2, b = commit("a", 11, 1), commit("a", 13, 3), commit("b", 20, 2)
    _, out = fold_queue(
        [a1, inspected(a1, runtime="r"), a2, inspected(a2), b, inspected(b, runtime="r")]
    )
    assert skipped(out)["b@20"] == "copy_of a@11 (same layers and runtime config)"


def test_a_hotkey_resubmitting_its_own_image_copies_nobody() -> None:
    a1, b, a2 = commit("a", 11, 1), commit("b", 20, 2), commit("a", 30, 3)
    state, out = fold_queue(
        [
            a1,
            inspected(a1, runtime="r"),
            b,
            inspected(b, runtime="r"),
            a2,
            inspected(a2, runtime="r"),
        ]
    )
    # a's new label on its own earlier image is a's own image; b, in between, is the copy.
    assert skipped(out) == {
        "b@20": "copy_of a@11 (same layers and runtime config)",
        "a@11": "superseded by the commitment at block 30",
    }
    assert [s.key for s in state.ready()] == ["a@30"]


def test_an_earlier_commitment_arriving_late_makes_the_queued_one_a_copy() -> None:
    late, queued_first = commit("z", 11, 7), commit("a", 12, 7)
    _, out = fold_queue([queued_first, inspected(queued_first), late])
    assert skipped(out) == {"a@12": "copy_of z@11 (same manifest digest)"}


def test_a_copy_taken_into_a_round_before_its_original_was_known_is_not_recalled() -> None:
    copy, original = commit("b", 12, 2), commit("a", 11, 1)
    state, out = fold_queue([copy, inspected(copy, runtime="r"), due(1)])
    (q,) = queued(out)
    assert q.hotkey == "b"
    out2 = apply_all(state, [original, inspected(original, runtime="r")])
    assert skipped(out2) == {}
    assert [e.eval_id for e in state.in_flight()] == [q.eval_id]
    assert [s.key for s in state.queue()] == ["a@11"]


# --- the king is re-measured every N blocks ------------------------------------------------------


def crowned_at(block: int, every: int) -> QueueState:
    """A state whose round 1, opened at ``block``, crowned ``a``; nothing is queued."""
    state, out = fold_queue([*submitted("a", 11, 1), due(1, block=block)], 4, every)
    state.apply(finished(queued(out)[0]))
    state.apply(king("a", 1, 11))
    return state


def test_with_no_challenger_the_king_alone_is_remeasured_n_blocks_after_the_last_round() -> None:
    state = crowned_at(100, every=50)
    assert state.remeasure_block() == 150
    assert not state.round_due(149)
    assert state.apply(due(2, block=149)) == [], "the fold checks the RoundDue's own block"
    assert state.round_due(150)
    out = state.apply(due(2, block=150))
    assert [(q.hotkey, q.role) for q in queued(out)] == [("a", "king")]
    assert [e.eval_ids for e in out if isinstance(e, RoundOpened)] == [[eval_id_for(digest(1), 2)]]


def test_the_clock_restarts_at_every_round_that_opens() -> None:
    state = crowned_at(100, every=50)
    apply_all(state, submitted("b", 120, 2))
    out = state.apply(due(2, block=130))  # a challenger's round, early
    for q in queued(out):
        state.apply(finished(q, score=0.05))
    state.apply(RoundDecided(round=2, king_hotkey="a", king_digest=digest(1), king_uid=1))
    assert not state.round_due(179)
    assert state.round_due(180)


def test_a_challenger_opens_a_round_before_the_clock_does() -> None:
    state = crowned_at(100, every=50)
    apply_all(state, submitted("b", 120, 2))
    assert state.round_due(101)


def test_no_king_or_no_clock_opens_no_round_on_its_own() -> None:
    state, out = fold_queue([*submitted("a", 11, 1), due(1, block=100)], 4, 50)
    state.apply(finished(queued(out)[0], verdict="fail", score=0.0))
    state.apply(RoundDecided(round=1))
    assert state.remeasure_block() is None
    assert not state.round_due(10**6)
    assert not crowned_at(100, every=0).round_due(10**6)


def test_a_remeasure_round_is_waited_for_and_rederived_by_a_replay() -> None:
    history: list[Event] = [*submitted("a", 11, 1), due(1, block=100)]
    _, out1 = fold_queue(history, 4, 50)
    history += [finished(q) for q in queued(out1)]
    history += [king("a", 1, 11), due(2, block=150), due(3, block=300)]
    state, full = fold_queue(history, 4, 50)
    assert [q.eval_id for q in queued(full)] == [
        eval_id_for(digest(1), 1),
        eval_id_for(digest(1), 2),
    ], "round 3 waits until the crown keeper decided round 2"
    assert fold_queue(history, 4, 50)[1] == full
    assert state.round is not None and state.round.number == 2
