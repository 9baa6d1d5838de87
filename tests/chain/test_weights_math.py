"""Weight normalisation, rate-limit and commit-reveal arithmetic, with plain data (no chain)."""

import pytest

from chain.commit_reveal import WeightsCommit, commit_hash, epoch_index, reveal_window
from chain.weights import (
    U16_MAX,
    WeightLimits,
    WeightsError,
    apply_max_weight,
    blocks_until_weights_allowed,
    weights_for_emit,
)


def limits(n: int = 8, min_allowed: int = 1, max_limit: int = U16_MAX) -> WeightLimits:
    return WeightLimits(
        n_uids=n,
        min_allowed_weights=min_allowed,
        max_weight_limit=max_limit,
        version_key=0,
        rate_limit=0,
        last_update=0,
    )


def test_single_king_gets_u16_max() -> None:
    assert weights_for_emit({3: 1.0}, limits()) == ([3], [U16_MAX])


def test_weights_are_max_upscaled_and_zeros_dropped() -> None:
    uids, weights = weights_for_emit({0: 0.5, 2: 0.25, 5: 0.0, 7: 0.125}, limits())
    assert uids == [0, 2, 7]
    assert weights == [U16_MAX, round(U16_MAX / 2), round(U16_MAX / 4)]


def test_min_allowed_weights_pads_with_zero_weighted_uids() -> None:
    uids, weights = weights_for_emit({5: 1.0}, limits(min_allowed=3))
    assert uids == [0, 1, 5]
    assert weights == [0, 0, U16_MAX]


def test_max_weight_limit_spreads_the_excess() -> None:
    # At most ~half to one uid: the king's excess goes to the other uids evenly.
    uids, weights = weights_for_emit({1: 1.0}, limits(n=4, max_limit=U16_MAX // 2))
    assert uids == [0, 1, 2, 3]
    total = sum(weights)
    # What the chain checks: the largest share, renormalised by sum, stays within the limit.
    assert max(w * U16_MAX // total for w in weights) <= U16_MAX // 2
    assert weights[1] == U16_MAX


def test_apply_max_weight_keeps_sum_and_respects_the_limit() -> None:
    out = apply_max_weight([0.7, 0.2, 0.1, 0.0], 0.4)
    assert sum(out) == pytest.approx(1.0)
    assert max(out) <= 0.4 + 1e-9
    assert out[1] > out[2] > 0  # proportional redistribution keeps the order
    assert apply_max_weight([1.0, 0.0], 0.3) == [0.5, 0.5]  # infeasible: uniform


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({9: 1.0}, "uid 9 is not on the subnet"),
        ({1: -1.0}, "finite and >= 0"),
        ({1: float("nan")}, "finite and >= 0"),
        ({1: 0.0}, "all scores are zero"),
    ],
)
def test_bad_scores_are_refused(scores: dict[int, float], message: str) -> None:
    with pytest.raises(WeightsError, match=message):
        weights_for_emit(scores, limits())


def test_min_allowed_above_subnet_size_is_refused() -> None:
    with pytest.raises(WeightsError, match="at least 9 weights"):
        weights_for_emit({1: 1.0}, limits(n=8, min_allowed=9))


@pytest.mark.parametrize(
    ("last", "limit", "now", "wait"),
    [(0, 100, 5, 0), (10, 0, 11, 0), (10, 100, 50, 60), (10, 100, 110, 0), (10, 100, 200, 0)],
)
def test_blocks_until_weights_allowed(last: int, limit: int, now: int, wait: int) -> None:
    assert blocks_until_weights_allowed(last, limit, now) == wait


def test_reveal_window_is_the_epoch_after_the_commits() -> None:
    # As the runtime stored it for a commit at block 23 on netuid 2 with tempo 5: (27, 32).
    window = reveal_window(netuid=2, tempo=5, reveal_period=1, commit_block=23)
    assert (window.start, window[-1]) == (27, 32)
    assert epoch_index(2, 5, 26) + 1 == epoch_index(2, 5, 27) == epoch_index(2, 5, 32)


def test_commit_hash_depends_on_every_field() -> None:
    base = WeightsCommit(uids=[1], weights=[65535], salt=[1, 2], version_key=0)
    key = bytes(32)
    digest = commit_hash(key, 2, base)
    assert digest.startswith("0x") and len(digest) == 66
    others = [
        commit_hash(bytes([1]) + bytes(31), 2, base),
        commit_hash(key, 3, base),
        commit_hash(key, 2, WeightsCommit([2], [65535], [1, 2], 0)),
        commit_hash(key, 2, WeightsCommit([1], [65534], [1, 2], 0)),
        commit_hash(key, 2, WeightsCommit([1], [65535], [2, 1], 0)),
        commit_hash(key, 2, WeightsCommit([1], [65535], [1, 2], 1)),
        # Length prefixes keep [1], [1, 2] apart from [1, 1], [2].
        commit_hash(key, 2, WeightsCommit([1, 1], [2], [1, 2], 0)),
    ]
    assert len({digest, *others}) == len(others) + 1
