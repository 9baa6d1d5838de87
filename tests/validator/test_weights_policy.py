"""The weights policy: all weight to the king, the no-king policy, and when to set again."""

from __future__ import annotations

import pytest

from actors.weights_policy import (
    WeightsClock,
    desired_weights,
    next_set_block,
    refresh_interval,
    weights_due,
)


def test_all_weight_goes_to_the_king_whatever_the_no_king_policy() -> None:
    assert desired_weights(7, owner_uid=0) == {7: 1.0}
    assert desired_weights(7, owner_uid=0, no_king="none") == {7: 1.0}


def test_no_king_pays_the_owner_uid_or_nothing() -> None:
    assert desired_weights(None, owner_uid=3) == {3: 1.0}
    assert desired_weights(None, owner_uid=3, no_king="none") == {}
    # The owner's hotkey is not registered on the subnet: there is no uid to weight.
    assert desired_weights(None, owner_uid=None) == {}


def test_a_king_without_a_uid_sets_nothing() -> None:
    assert desired_weights(-1, owner_uid=0) == {}


def test_an_unknown_no_king_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="owner, none"):
        desired_weights(None, owner_uid=0, no_king="burn")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tempo", "rate_limit", "cutoff", "interval"),
    [
        (360, 100, 5000, 360),  # finney-like: once per tempo
        (360, 500, 5000, 500),  # never faster than the rate limit
        (360, 0, 400, 200),  # at least twice per activity cutoff
        (10, 0, 5000, 10),
        (0, 0, 0, 1),  # degenerate parameters still give a positive interval
    ],
)
def test_refresh_interval(tempo: int, rate_limit: int, cutoff: int, interval: int) -> None:
    assert refresh_interval(tempo, rate_limit, cutoff) == interval


def clock(head: int, last: int, tempo: int = 10, rate_limit: int = 3) -> WeightsClock:
    return WeightsClock(
        head=head, last_update=last, tempo=tempo, rate_limit=rate_limit, activity_cutoff=5000
    )


def test_never_set_is_due_at_once() -> None:
    assert next_set_block(clock(head=50, last=0), changed=False) == 0
    assert weights_due(clock(head=50, last=0), changed=False)


def test_a_change_waits_only_for_the_rate_limit() -> None:
    assert next_set_block(clock(head=101, last=100), changed=True) == 103
    assert not weights_due(clock(head=101, last=100), changed=True)
    # The set lands in head + 1 at the earliest: at head 102 it lands in 103.
    assert weights_due(clock(head=102, last=100), changed=True)


def test_unchanged_weights_are_set_again_once_per_tempo() -> None:
    assert next_set_block(clock(head=100, last=100), changed=False) == 110
    assert not weights_due(clock(head=108, last=100), changed=False)
    assert weights_due(clock(head=109, last=100), changed=False)


def test_the_refresh_never_breaks_a_rate_limit_longer_than_the_tempo() -> None:
    c = clock(head=100, last=100, tempo=10, rate_limit=40)
    assert next_set_block(c, changed=False) == 140
    assert next_set_block(c, changed=True) == 140
