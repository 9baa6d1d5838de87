"""What a restarted weights keeper takes from the log: its last set and its unrevealed commits."""

from __future__ import annotations

from actors.weights_keeper import WeightsKeeper
from chain.client import ChainClient
from chain.wallet import dev_keypair
from events.types import WeightsCommitted, WeightsSet


def committed(digest: str, block: int, netuid: int = 2) -> WeightsCommitted:
    return WeightsCommitted(
        netuid=netuid,
        commit_hash=digest,
        uids=[1],
        weights=[65535],
        salt=[7],
        version_key=0,
        block=block,
    )


def test_history_gives_the_last_set_and_the_commits_still_to_reveal() -> None:
    history = [
        WeightsSet(netuid=2, uids=[1], weights=[65535], block=10, success=True, attempt=1),
        committed("0xa", 20),
        WeightsSet(
            netuid=2,
            uids=[1],
            weights=[65535],
            block=31,
            success=True,
            attempt=2,
            commit_hash="0xa",
        ),
        committed("0xb", 41),
        committed("0xc", 52),
        # Expired unrevealed: given up, not revealed again.
        WeightsSet(
            netuid=2,
            uids=[1],
            weights=[65535],
            block=70,
            success=False,
            attempt=3,
            commit_hash="0xb",
            error="expired",
        ),
        # Another subnet's records are not this keeper's.
        committed("0xd", 90, netuid=3),
        WeightsSet(netuid=3, uids=[1], weights=[65535], block=95, success=True, attempt=9),
    ]
    # The client connects lazily: building a keeper touches no chain.
    keeper = WeightsKeeper(
        ChainClient("ws://127.0.0.1:1"), dev_keypair("//Alice"), 2, history=history
    )
    assert sorted(keeper.commits) == ["0xc"]
    assert keeper.last_set == 52
    assert keeper.attempt == 3
