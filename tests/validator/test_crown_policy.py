"""The crown keeper's fold, on plain events: decay, ties, dethroning, determinism."""

from __future__ import annotations

from events.log import EventLog
from events.types import (
    CrownDefended,
    EvalFinished,
    EvalQueued,
    Event,
    HotkeySwapped,
    KingCrowned,
    KingDethroned,
    MinerDeregistered,
    MinerRegistered,
    OrganicChecked,
    RoundDecided,
    RoundOpened,
)
from rules.crown_policy import ORGANIC_FAILS, ORGANIC_WINDOW, CrownState, fold_crown
from rules.king import King, follow_crown
from rules.queue_policy import eval_id_for

DECAY_BLOCKS = 50_400  # DESIGN.md section 5: the margin falls from 1% to 0 over this many blocks


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


def registered(hotkey: str, uid: int) -> MinerRegistered:
    return MinerRegistered(netuid=2, uid=uid, hotkey=hotkey, coldkey="c", block=1)


def round_of(
    number: int, block: int, entries: list[tuple[str, int, str, str, float]]
) -> list[Event]:
    """Events of one whole round; entries are (hotkey, digest no, role, verdict, score)."""
    qs = [
        EvalQueued(
            eval_id=eval_id_for(digest(d), number),
            hotkey=h,
            image="127.0.0.1:5000/m",
            digest=digest(d),
            role=role,  # type: ignore[arg-type]
            submitted_block=d,
            round_seed="s",
        )
        for h, d, role, _, _ in entries
    ]
    fs = [
        EvalFinished(
            eval_id=q.eval_id,
            hotkey=q.hotkey,
            digest=q.digest,
            verdict=verdict,  # type: ignore[arg-type]
            reason="" if verdict == "pass" else f"{verdict} reason",
            score=score,
            noise=0.0,
            metrics={},
            role=q.role,
        )
        for q, (_, _, _, verdict, score) in zip(qs, entries, strict=True)
    ]
    opened = RoundOpened(round=number, block=block, seed="s", eval_ids=[q.eval_id for q in qs])
    return [opened, *qs, *fs]


def of(out: list[Event], cls: type) -> list:
    return [e for e in out if isinstance(e, cls)]


BASE = [registered("a", 1), registered("b", 2), registered("c", 3)]
ROUND1 = round_of(1, 100, [("a", 1, "challenger", "pass", 0.20)])


def test_first_passing_challenger_with_a_positive_score_is_crowned() -> None:
    state, out = fold_crown(BASE + ROUND1)
    (crowned,) = of(out, KingCrowned)
    assert (crowned.hotkey, crowned.block, crowned.previous_hotkey) == ("a", 100, None)
    assert state.king is not None and state.king.uid == 1
    (decided,) = of(out, RoundDecided)
    assert (decided.king_hotkey, decided.king_uid, decided.king_score) == ("a", 1, 0.20)


def test_a_round_is_decided_only_when_every_eval_has_a_verdict() -> None:
    events = BASE + ROUND1
    _, out = fold_crown(events[:-1])
    assert out == []


def test_fresh_king_needs_more_than_a_one_percent_margin() -> None:
    king_rescored = ("a", 1, "king", "pass", 0.20)
    just_under = round_of(2, 100, [king_rescored, ("b", 2, "challenger", "pass", 0.2019)])
    state, out = fold_crown(BASE + ROUND1 + just_under)
    assert state.king is not None and state.king.hotkey == "a"
    assert [d.challenger_eval_id for d in of(out, CrownDefended)] == [eval_id_for(digest(2), 2)]
    over = round_of(2, 100, [king_rescored, ("b", 2, "challenger", "pass", 0.2021)])
    state, out = fold_crown(BASE + ROUND1 + over)
    assert state.king is not None and state.king.hotkey == "b"
    assert of(out, KingCrowned)[-1].previous_hotkey == "a"


def test_the_margin_decays_with_the_kings_age() -> None:
    king_rescored = ("a", 1, "king", "pass", 0.20)
    challenger = ("b", 2, "challenger", "pass", 0.2015)  # +0.75%
    young = round_of(2, 100 + DECAY_BLOCKS // 10, [king_rescored, challenger])  # margin 0.9%
    state, _ = fold_crown(BASE + ROUND1 + young)
    assert state.king is not None and state.king.hotkey == "a"
    old = round_of(2, 100 + DECAY_BLOCKS // 2, [king_rescored, challenger])  # margin 0.5%
    state, _ = fold_crown(BASE + ROUND1 + old)
    assert state.king is not None and state.king.hotkey == "b"


def test_a_tie_goes_to_the_incumbent_even_when_the_margin_has_decayed() -> None:
    ancient = round_of(
        2,
        100 + 2 * DECAY_BLOCKS,
        [("a", 1, "king", "pass", 0.20), ("b", 2, "challenger", "pass", 0.20)],
    )
    state, out = fold_crown(BASE + ROUND1 + ancient)
    assert state.king is not None and state.king.hotkey == "a"
    assert len(of(out, CrownDefended)) == 1


def test_the_king_is_judged_on_its_remeasured_score() -> None:
    slower_king = round_of(
        2, 100, [("a", 1, "king", "pass", 0.10), ("b", 2, "challenger", "pass", 0.15)]
    )
    state, _ = fold_crown(BASE + ROUND1 + slower_king)
    assert state.king is not None and state.king.hotkey == "b"


def test_a_king_that_fails_is_dethroned_and_the_best_challenger_takes_over() -> None:
    r2 = round_of(
        2,
        100,
        [
            ("a", 1, "king", "fail", 0.0),
            ("b", 2, "challenger", "pass", 0.05),
            ("c", 3, "challenger", "pass", 0.08),
        ],
    )
    state, out = fold_crown(BASE + ROUND1 + r2)
    (dethroned,) = of(out, KingDethroned)
    assert dethroned.hotkey == "a" and "fail reason" in dethroned.reason
    assert of(out, KingCrowned)[-1].hotkey == "c"
    assert [d.challenger_eval_id for d in of(out, CrownDefended)] == [eval_id_for(digest(2), 2)]
    assert state.king is not None and state.king.hotkey == "c"


def test_an_eval_error_does_not_dethrone_the_king() -> None:
    r2 = round_of(2, 100, [("a", 1, "king", "error", 0.0), ("b", 2, "challenger", "fail", 0.0)])
    state, out = fold_crown(BASE + ROUND1 + r2)
    assert of(out, KingDethroned) == []
    assert state.king is not None and state.king.score == 0.20


def test_failed_challengers_are_never_crowned() -> None:
    _, out = fold_crown(BASE + round_of(1, 100, [("c", 3, "challenger", "fail", 0.9)]))
    assert of(out, KingCrowned) == []
    assert of(out, RoundDecided)[0].king_hotkey is None


def test_a_deregistered_king_is_dethroned() -> None:
    state, out = fold_crown(
        BASE + ROUND1 + [MinerDeregistered(netuid=2, uid=1, hotkey="a", block=150)]
    )
    assert state.king is None
    assert "deregistered" in of(out, KingDethroned)[0].reason


def test_a_swapped_king_keeps_its_crown_under_its_new_hotkey() -> None:
    swap = HotkeySwapped(netuid=2, uid=1, old_hotkey="a", new_hotkey="a2", block=150)
    state, out = fold_crown(BASE + ROUND1 + [swap])
    assert state.king is not None and (state.king.hotkey, state.king.uid) == ("a2", 1)
    assert of(out, KingDethroned) == []
    # Its re-measurement is decided under the new hotkey, and a later deregistration of the
    # new hotkey dethrones it; one of the old hotkey no longer can.
    r2 = round_of(2, 300, [("a2", 1, "king", "pass", 0.2)])
    state, out = fold_crown(BASE + ROUND1 + [swap, *r2])
    assert [d.king_hotkey for d in of(out, RoundDecided)] == ["a", "a2"]
    old = MinerDeregistered(netuid=2, uid=1, hotkey="a", block=400)
    assert fold_crown(BASE + ROUND1 + [swap, old])[0].king is not None
    new = MinerDeregistered(netuid=2, uid=1, hotkey="a2", block=400)
    state, out = fold_crown(BASE + ROUND1 + [swap, new])
    assert state.king is None and len(of(out, KingDethroned)) == 1


def test_a_replay_rederives_the_same_decisions() -> None:
    r2 = round_of(2, 300, [("a", 1, "king", "pass", 0.2), ("b", 2, "challenger", "pass", 0.5)])
    _, first = fold_crown(BASE + ROUND1)
    _, full = fold_crown(BASE + ROUND1 + r2)
    assert full[: len(first)] == first
    assert fold_crown(BASE + ROUND1 + r2)[1] == full
    assert len({(type(e).__name__, e.key) for e in full}) == len(full)


def test_a_score_within_the_measured_noise_takes_no_crown() -> None:
    opened, q, f = round_of(1, 100, [("a", 1, "challenger", "pass", 0.02)])
    noisy = EvalFinished(**{**{k: getattr(f, k) for k in f.__struct_fields__}, "noise": 0.03})
    state, out = fold_crown([*BASE, opened, q, noisy])
    assert state.king is None
    assert of(out, KingCrowned) == []


def organic(hotkey: str, digest_no: int, results: str, start: int = 0) -> list[Event]:
    """Organic checks of (hotkey, digest), one per character of ``results``: P passed, F failed."""
    return [
        OrganicChecked(
            hotkey=hotkey,
            digest=digest(digest_no),
            request_id=f"{hotkey}-{digest_no}-{start + i}",
            passed=result == "P",
            reason="ok" if result == "P" else "off_argmax: 97% of the answer's 32 tokens ...",
            rule="greedy",
            answer_tokens=32,
            reference_tokens=0,
            gap=0.0 if result == "P" else 0.97,
        )
        for i, result in enumerate(results)
    ]


def test_the_rule_needs_more_than_one_fluke_in_a_window() -> None:
    assert 1 < ORGANIC_FAILS <= ORGANIC_WINDOW


def test_a_king_whose_organic_answers_fail_is_dethroned_for_organic_mismatch() -> None:
    checks = organic("a", 1, "F" * ORGANIC_FAILS)
    state, out = fold_crown(BASE + ROUND1 + checks[:-1])
    assert of(out, KingDethroned) == []
    assert state.king is not None and state.king.hotkey == "a"
    state, out = fold_crown(BASE + ROUND1 + checks)
    (dethroned,) = of(out, KingDethroned)
    assert (dethroned.hotkey, dethroned.digest) == ("a", digest(1))
    assert dethroned.reason.startswith("organic_mismatch: ")
    assert "off_argmax" in dethroned.reason
    assert dethroned.eval_id == f"organic:{checks[-1].request_id}"
    assert state.king is None


def test_failures_far_apart_do_not_add_up() -> None:
    # Between two failures, a window's worth of passing checks: never ORGANIC_FAILS in a window.
    spaced = ("F" + "P" * ORGANIC_WINDOW) * (ORGANIC_FAILS + 2)
    state, out = fold_crown(BASE + ROUND1 + organic("a", 1, spaced))
    assert of(out, KingDethroned) == []
    assert state.king is not None and state.king.hotkey == "a"


def test_failures_close_together_dethrone_even_among_passes() -> None:
    mixed = "P".join("F" * ORGANIC_FAILS)  # F P F P F: within one window
    _, out = fold_crown(BASE + ROUND1 + organic("a", 1, mixed))
    assert len(of(out, KingDethroned)) == 1


def test_checks_of_another_miner_or_digest_do_not_count_against_the_king() -> None:
    others = organic("b", 2, "F" * ORGANIC_FAILS) + organic("a", 9, "F" * ORGANIC_FAILS)
    state, out = fold_crown(BASE + ROUND1 + others)
    assert of(out, KingDethroned) == []
    assert state.king is not None and state.king.hotkey == "a"


def test_a_new_king_starts_with_a_clean_organic_record() -> None:
    almost = organic("a", 1, "F" * (ORGANIC_FAILS - 1))
    r2 = round_of(2, 100, [("a", 1, "king", "pass", 0.20), ("b", 2, "challenger", "pass", 0.5)])
    # The failures of the old king, and late checks of it after its fall, count for nothing.
    late = organic("a", 1, "F", start=ORGANIC_FAILS)
    new_king = organic("b", 2, "F" * (ORGANIC_FAILS - 1))
    state, out = fold_crown(BASE + ROUND1 + almost + r2 + late + new_king)
    assert of(out, KingDethroned) == []
    assert state.king is not None and state.king.hotkey == "b"


def test_a_king_dethroned_by_organic_checks_is_not_restored_by_its_remeasurement() -> None:
    fallen = organic("a", 1, "F" * ORGANIC_FAILS)
    r2 = round_of(2, 100, [("a", 1, "king", "pass", 0.20), ("b", 2, "challenger", "pass", 0.05)])
    state, out = fold_crown(BASE + ROUND1 + fallen + r2)
    assert len(of(out, KingDethroned)) == 1
    assert of(out, KingCrowned)[-1].hotkey == "b"  # no king left to beat
    assert of(out, RoundDecided)[-1].king_hotkey == "b"
    assert state.king is not None and state.king.hotkey == "b"


def test_organic_decisions_replay_identically() -> None:
    events = BASE + ROUND1 + organic("a", 1, "PFPPFF")
    assert fold_crown(events)[1] == fold_crown(events)[1]


# What an analyst asks of the ``kings`` view: the latest crowning no dethronement has ended.
CURRENT_KING_SQL = """
    SELECT c.hotkey, c.digest FROM kings c
    WHERE c.change = 'crowned' AND c.seq = (SELECT max(seq) FROM kings WHERE change = 'crowned')
      AND NOT EXISTS (SELECT 1 FROM kings d WHERE d.change = 'dethroned' AND d.seq > c.seq
                      AND (d.hotkey, d.digest) = (c.hotkey, c.digest))
"""


def test_the_kings_view_and_the_folds_agree_on_the_king_after_every_decision(tmp_path) -> None:
    history = (
        BASE
        + ROUND1
        + round_of(2, 200, [("a", 1, "king", "pass", 0.20), ("b", 2, "challenger", "pass", 0.5)])
        + round_of(3, 300, [("b", 2, "king", "fail", 0.0), ("c", 3, "challenger", "fail", 0.0)])
        + round_of(4, 400, [("c", 4, "challenger", "pass", 0.3)])
        + [MinerDeregistered(netuid=2, uid=3, hotkey="c", block=450)]
        + round_of(5, 500, [("a", 5, "challenger", "pass", 0.4)])
    )
    kings_seen: list[tuple[str, str] | None] = []
    with EventLog(tmp_path / "events.duckdb") as log:
        state, served = CrownState(), None
        for event in history:
            decisions = state.apply(event)
            log.append(decisions)
            for decision in decisions:
                served = follow_crown(served, decision)
            rows = log.sql(CURRENT_KING_SQL)[1]
            keeper = None if state.king is None else (state.king.hotkey, state.king.digest)
            assert keeper == (None if served is None else (served.hotkey, served.digest))
            assert keeper == (rows[0] if rows else None)
            kings_seen.append(keeper)
    assert [k for i, k in enumerate(kings_seen) if i == 0 or k != kings_seen[i - 1]] == [
        None,
        ("a", digest(1)),
        ("b", digest(2)),
        None,
        ("c", digest(4)),
        None,
        ("a", digest(5)),
    ], "the scenario crowns, replaces, dethrones for a failure and for deregistering"
    assert served == King.from_crowned(state.king.crowned(None)), "the whole record, uid too"
