"""Which crown should be serving: a pure fold over crown events."""

from __future__ import annotations

from events.types import CrownDefended, KingCrowned, KingDethroned
from serve_apps.king import Crown, king_to_serve

A = KingCrowned(hotkey="5A", digest="sha256:a", image="r/a", score=1.0, block=10, eval_id="e1")
B = KingCrowned(hotkey="5B", digest="sha256:b", image="r/b", score=2.0, block=20, eval_id="e2")


def fold(*events):
    crown = None
    for event in events:
        crown = king_to_serve(crown, event)
    return crown


def test_latest_crown_serves() -> None:
    assert fold(A) == Crown("5A", "r/a", "sha256:a", 10)
    assert fold(A).ref == "r/a@sha256:a"
    assert fold(A, B) == Crown("5B", "r/b", "sha256:b", 20)


def test_dethroning_the_serving_king_stops_it_and_others_do_not() -> None:
    dethrone_a = KingDethroned(hotkey="5A", digest="sha256:a", eval_id="e3", reason="failed gate")
    assert fold(A, dethrone_a) is None
    assert fold(A, B, dethrone_a).hotkey == "5B"  # a stale dethronement changes nothing
    other_digest = KingDethroned(hotkey="5A", digest="sha256:old", eval_id="e4", reason="x")
    assert fold(A, other_digest).hotkey == "5A"


def test_unrelated_events_change_nothing() -> None:
    defended = CrownDefended(hotkey="5A", score=1.0, challenger_eval_id="e9")
    assert fold(A, defended) == fold(A)
    assert fold(defended) is None
