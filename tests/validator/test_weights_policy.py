"""The weights policy: all weight to the king, nothing without one."""

from __future__ import annotations

from actors.weights_policy import desired_weights


def test_all_weight_goes_to_the_king() -> None:
    assert desired_weights(7) == {7: 1.0}


def test_no_king_means_no_weights() -> None:
    assert desired_weights(None) == {}
    assert desired_weights(-1) == {}
