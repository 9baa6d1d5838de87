"""Who is king, read back from crown events: pure folds, and the ``kings`` view agreeing."""

from __future__ import annotations

from dataclasses import replace

from events.types import CrownDefended, KingCrowned, KingDethroned, KingServing
from rules.king import King, follow_crown, follow_serving

A = KingCrowned(hotkey="5A", digest="sha256:a", image="r/a", score=1.0, block=10, eval_id="e1")
B = KingCrowned(hotkey="5B", digest="sha256:b", image="r/b", score=2.0, block=20, eval_id="e2")
DETHRONE_A = KingDethroned(hotkey="5A", digest="sha256:a", eval_id="e3", reason="failed gate")


def fold(*events):
    crown = None
    for event in events:
        crown = follow_crown(crown, event)
    return crown


def test_latest_crown_serves() -> None:
    assert fold(A) == King.from_crowned(A)
    assert (fold(A).hotkey, fold(A).image, fold(A).digest, fold(A).since_block) == (
        "5A",
        "r/a",
        "sha256:a",
        10,
    )
    assert fold(A).ref == "r/a@sha256:a"
    assert fold(A, B) == King.from_crowned(B)


def test_dethroning_the_serving_king_stops_it_and_others_do_not() -> None:
    assert fold(A, DETHRONE_A) is None
    assert fold(A, B, DETHRONE_A).hotkey == "5B"  # a stale dethronement changes nothing
    other_digest = KingDethroned(hotkey="5A", digest="sha256:old", eval_id="e4", reason="x")
    assert fold(A, other_digest).hotkey == "5A"


def test_unrelated_events_change_nothing() -> None:
    defended = CrownDefended(hotkey="5A", score=1.0, challenger_eval_id="e9")
    assert fold(A, defended) == fold(A)
    assert fold(defended) is None


def test_a_king_survives_its_own_crowning_event() -> None:
    king = King(
        hotkey="5A",
        uid=3,
        digest="sha256:a",
        image="r/a",
        score=1.5,
        since_block=10,
        submitted_block=7,
        eval_id="e1",
        organic=(True, False),
    )
    crowned = king.crowned(previous=None)
    assert follow_crown(None, crowned) == replace(king, organic=())
    assert follow_crown(King.from_crowned(crowned), king.dethroned("e2", "why")) is None


def test_the_gateway_follows_the_latest_announcement_until_that_reign_ends() -> None:
    a = KingServing(hotkey="5A", digest="sha256:a", endpoint="http://a", since_block=10)
    b = KingServing(hotkey="5B", digest="sha256:b", endpoint="http://b", since_block=20)

    def serving(*events):
        out = None
        for event in events:
            out = follow_serving(out, event)
        return out

    assert serving(a) == a
    assert serving(a, B) == a, "the old king answers until the new one is healthy"
    assert serving(a, b) == b
    assert serving(a, DETHRONE_A) is None
    assert serving(b, DETHRONE_A) == b
    # An earlier image of the same hotkey being dethroned leaves the current one serving.
    a2 = KingServing(hotkey="5A", digest="sha256:a2", endpoint="http://a2", since_block=30)
    assert serving(a2, DETHRONE_A) == a2
