"""What the scheduler sends an Evaluator, on plain data: a round's evals with their attempts."""

from __future__ import annotations

import pytest

from actors.eval_attempt import EvalAttempt, decode_attempts, encode_attempts
from actors.scheduler import evaluator_name, next_attempts
from events.types import EvalQueued, encode_msgpack


def queued(n: int, seed: str = "0xseed", role: str = "challenger") -> EvalQueued:
    return EvalQueued(
        eval_id=f"r3-{n}",
        hotkey=f"hk{n}",
        image=f"reg/miner{n}",
        digest=f"sha256:{n}",
        role=role,  # type: ignore[arg-type]
        submitted_block=n,
        round_seed=seed,
    )


def test_a_round_travels_with_its_attempts_in_order() -> None:
    sent = [
        EvalAttempt(queued=queued(0, role="king"), attempt=2),
        EvalAttempt(queued=queued(1), attempt=1),
    ]
    assert decode_attempts(encode_attempts(sent)) == sent


def test_anything_but_one_round_is_refused() -> None:
    with pytest.raises(ValueError, match="encode_attempts"):
        decode_attempts(encode_msgpack([queued(0)]))  # a bare EvalQueued batch
    with pytest.raises(ValueError, match="no evals"):
        decode_attempts(encode_attempts([]))
    mixed = [
        EvalAttempt(queued=queued(0), attempt=1),
        EvalAttempt(queued=queued(1, "0xother"), attempt=1),
    ]
    with pytest.raises(ValueError, match="2 round seeds"):
        decode_attempts(encode_attempts(mixed))


def test_each_eval_gets_its_next_attempt_until_it_has_none_left() -> None:
    evals = [queued(0, role="king"), queued(1), queued(2)]
    dispatch, spent = next_attempts(evals, {}, max_attempts=2)
    assert [(a.queued.eval_id, a.attempt) for a in dispatch] == [
        ("r3-0", 1),
        ("r3-1", 1),
        ("r3-2", 1),
    ]
    assert spent == []
    # After a death the unfinished ones go again; one already at the limit is out of attempts.
    dispatch, spent = next_attempts(evals[1:], {"r3-0": 1, "r3-1": 2, "r3-2": 1}, max_attempts=2)
    assert [(a.queued.eval_id, a.attempt) for a in dispatch] == [("r3-2", 2)]
    assert spent == [evals[1]]


def test_a_death_is_charged_to_the_first_unfinished_eval_only() -> None:
    """Evals are judged in order: the ones after the culprit go again, however often it died."""
    evals = [queued(1), queued(2)]
    dispatch, spent = next_attempts(evals, {"r3-1": 1, "r3-2": 2}, max_attempts=2)
    assert [(a.queued.eval_id, a.attempt) for a in dispatch] == [("r3-1", 2), ("r3-2", 3)]
    assert spent == []


def test_evaluators_are_named_by_round_and_attempt() -> None:
    assert evaluator_name(3, 1) == "arena.eval.r3.1"
    assert len({evaluator_name(3, 1), evaluator_name(3, 2), evaluator_name(4, 1)}) == 3
