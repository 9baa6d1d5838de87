"""Upstream choice: king first, reference miner as the fallback, a failed king cools down."""

from __future__ import annotations

from serve_apps.upstreams import Upstreams

REF = "http://ref:8000"
KING = "http://king:8000"


def test_reference_only_until_a_king_serves() -> None:
    upstreams = Upstreams(REF + "/", cooldown_s=10)
    assert upstreams.order(now=0) == [REF]
    upstreams.set_king(KING)
    assert upstreams.order(now=0) == [KING, REF]


def test_failed_king_is_skipped_for_the_cooldown_then_retried() -> None:
    upstreams = Upstreams(REF, cooldown_s=10)
    upstreams.set_king(KING)
    upstreams.mark_down(KING, now=100)
    assert upstreams.order(now=105) == [REF]
    assert upstreams.order(now=110) == [KING, REF]
    upstreams.mark_down(KING, now=110)
    upstreams.mark_up(KING)
    assert upstreams.order(now=111) == [KING, REF]


def test_new_king_starts_clean_and_reference_is_never_dropped() -> None:
    upstreams = Upstreams(REF, cooldown_s=10)
    upstreams.set_king(KING)
    upstreams.mark_down(KING, now=0)
    upstreams.mark_down(REF, now=0)
    assert upstreams.order(now=1) == [REF]
    upstreams.set_king("http://king2:8000")
    assert upstreams.order(now=1) == ["http://king2:8000", REF]
    upstreams.set_king(None)
    assert upstreams.order(now=1) == [REF]
