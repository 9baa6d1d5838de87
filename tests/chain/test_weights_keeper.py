"""The weights keeper on the real subtensor runtime: no-king weights, the rate limit, a restart
that sends nothing twice, the refresh of unchanged weights once per tempo, and commit-reveal
with a restart between commit and reveal.

It runs on a subnet of its own (the session subnet's weights belong to other tests), with one
miner to crown.
"""

from __future__ import annotations

import msgspec
import pytest

from actors.weights_keeper import WeightsKeeper
from chain.client import ChainClient
from chain.commit_reveal import read_pending_commits, reveal_window
from chain.localnet import LocalSubnet, SubnetParams, bootstrap_subnet, dev_miner, jump_blocks
from chain.weights import read_weights, read_weights_timing
from events.types import Event, WeightsCommitted, WeightsSet

pytestmark = pytest.mark.chain

TEMPO = 10
# A miner hotkey the session subnet never registers (it uses the first few).
KING = dev_miner(6)


@pytest.fixture(scope="module")
def subnet(chain_client: ChainClient) -> LocalSubnet:
    subnet = bootstrap_subnet(chain_client, 0, SubnetParams(tempo=TEMPO))
    register = chain_client.compose_call(
        "SubtensorModule", "burned_register", {"netuid": subnet.netuid, "hotkey": KING.ss58_address}
    )
    chain_client.submit(register, subnet.miner_coldkey)
    return subnet


@pytest.fixture(scope="module")
def history() -> list[Event]:
    """Everything the keepers of this module recorded, as the event log would hold it."""
    return []


def keeper(client: ChainClient, subnet: LocalSubnet, history: list[Event]) -> WeightsKeeper:
    """A keeper as the crown keeper builds one on (re)start: from the log's records."""
    return WeightsKeeper(client, subnet.validator, subnet.netuid, retry_s=0, history=history)


def uid_of(client: ChainClient, subnet: LocalSubnet, hotkey: str) -> int:
    return client.query("SubtensorModule", "Uids", [subnet.netuid, hotkey])


def set_rate_limit(client: ChainClient, subnet: LocalSubnet, limit: int) -> None:
    call = client.compose_call(
        "AdminUtils",
        "sudo_set_weights_set_rate_limit",
        {"netuid": subnet.netuid, "weights_set_rate_limit": limit},
    )
    client.sudo(call, subnet.sudo)


def test_with_no_king_all_weight_goes_to_the_owner_uid(
    chain_client: ChainClient, subnet: LocalSubnet, history: list[Event]
) -> None:
    owner_uid = uid_of(chain_client, subnet, subnet.validator.ss58_address)
    k = keeper(chain_client, subnet, history)
    events = k.step(None)
    history += events
    assert [(e.success, e.uids) for e in events if isinstance(e, WeightsSet)] == [
        (True, [owner_uid])
    ]
    assert read_weights(chain_client, subnet.netuid, subnet.validator.ss58_address) == {
        owner_uid: 65535.0
    }
    assert k.step(None) == [], "unchanged weights set again before the refresh is due"
    none = WeightsKeeper(chain_client, subnet.validator, subnet.netuid, no_king="none")
    assert none.step(None) == []


def test_a_new_king_waits_for_the_rate_limit_and_a_restart_sends_nothing_twice(
    chain_client: ChainClient, subnet: LocalSubnet, history: list[Event]
) -> None:
    king = uid_of(chain_client, subnet, KING.ss58_address)
    set_rate_limit(chain_client, subnet, 5)
    k = keeper(chain_client, subnet, history)
    assert k.step(king, "ev-1") == [], "sent inside the rate limit"
    jump_blocks(chain_client, 5)
    events = k.step(king, "ev-1")
    history += events
    (landed,) = events
    assert isinstance(landed, WeightsSet) and landed.success
    assert (landed.uids, landed.weights, landed.reason_eval_id) == ([king], [65535], "ev-1")
    assert read_weights(chain_client, subnet.netuid, subnet.validator.ss58_address) == {
        king: 65535.0
    }
    # A restart inside the rate limit: neither the log's record nor the chain's LastUpdate
    # lets it send, whether it kept its log or lost it.
    assert keeper(chain_client, subnet, history).step(king, "ev-1") == []
    assert keeper(chain_client, subnet, []).step(king, "ev-1") == []


def test_unchanged_weights_are_set_again_every_tempo(
    chain_client: ChainClient, subnet: LocalSubnet, history: list[Event]
) -> None:
    king = uid_of(chain_client, subnet, KING.ss58_address)
    hotkey = subnet.validator.ss58_address
    k = keeper(chain_client, subnet, history)
    sets: list[WeightsSet] = []
    for _ in range(3):
        last = read_weights_timing(chain_client, subnet.netuid, hotkey).last_update
        jump_blocks(chain_client, TEMPO - 2)  # head + 1 is one block short of a tempo
        assert k.step(king) == []
        jump_blocks(chain_client, 1)
        events = k.step(king)
        history += events
        sets += [e for e in events if isinstance(e, WeightsSet)]
        assert read_weights_timing(chain_client, subnet.netuid, hotkey).last_update == last + TEMPO
    assert [(s.success, s.uids) for s in sets] == [(True, [king])] * 3
    assert read_weights(chain_client, subnet.netuid, hotkey) == {king: 65535.0}


def jump_to(client: ChainClient, block: int) -> None:
    """Make ``block`` the head (the next extrinsic lands in ``block + 1``)."""
    head = client.finalized_number()
    if block > head:
        jump_blocks(client, block - head)


def test_under_commit_reveal_a_commit_made_before_a_restart_is_revealed_in_its_window(
    chain_client: ChainClient, subnet: LocalSubnet, history: list[Event]
) -> None:
    netuid = subnet.netuid
    hotkey = subnet.validator.ss58_address
    king = uid_of(chain_client, subnet, KING.ss58_address)
    owner = uid_of(chain_client, subnet, hotkey)
    switch_on = chain_client.compose_call(
        "AdminUtils", "sudo_set_commit_reveal_weights_enabled", {"netuid": netuid, "enabled": True}
    )
    chain_client.sudo(switch_on, subnet.sudo)
    timing = read_weights_timing(chain_client, netuid, hotkey)
    assert timing.commit_reveal and timing.reveal_period == 1
    jump_to(chain_client, timing.last_update + timing.rate_limit)

    # The king falls: the owner's weights are due at once, as a commit.
    k = keeper(chain_client, subnet, history)
    events = k.step(None, "fall")
    history += events
    (committed,) = events
    assert isinstance(committed, WeightsCommitted)
    assert (committed.uids, committed.weights) == ([owner], [65535])
    assert read_pending_commits(chain_client, netuid, hotkey) == [committed.commit_hash]
    assert read_weights(chain_client, netuid, hotkey) == {king: 65535.0}, "set before the reveal"
    assert k.step(None, "fall") == [], "revealed or committed again before the window"

    # The crown keeper restarts; the new keeper knows the commit only from the log.
    window = reveal_window(netuid, timing.tempo, timing.reveal_period, committed.block)
    jump_to(chain_client, window.start - 1)
    events = keeper(chain_client, subnet, history).step(None, "fall")
    history += events
    revealed = events[0]
    assert isinstance(revealed, WeightsSet) and revealed.success, revealed
    assert revealed.commit_hash == committed.commit_hash and revealed.block in window
    assert read_weights(chain_client, netuid, hotkey) == {owner: 65535.0}
    # The reveal window opens a tempo after the commit: the refresh commits the same weights.
    assert all(isinstance(e, WeightsCommitted) and e.uids == [owner] for e in events[1:]), events
    assert read_pending_commits(chain_client, netuid, hotkey) == [
        e.commit_hash for e in events[1:] if isinstance(e, WeightsCommitted)
    ]
    assert not [e for e in history if isinstance(e, WeightsSet) and not e.success]


def test_a_commit_the_chain_refuses_to_reveal_is_given_up_once(
    chain_client: ChainClient, subnet: LocalSubnet, history: list[Event]
) -> None:
    netuid = subnet.netuid
    hotkey = subnet.validator.ss58_address
    timing = read_weights_timing(chain_client, netuid, hotkey)
    assert timing.commit_reveal, "runs after the commit-reveal test, on its subnet"
    k = keeper(chain_client, subnet, history)
    if not k.commits:  # the refresh has not committed yet: make it due
        jump_to(chain_client, k.last_set + TEMPO - 1)
        history += k.step(None, "fall")
    (real,) = keeper(chain_client, subnet, history).commits.values()
    # The log's record of the salt is wrong (a damaged log): the chain refuses the reveal.
    forged = msgspec.structs.replace(real, salt=[s ^ 1 for s in real.salt])
    k = keeper(chain_client, subnet, [*history, forged])
    window = reveal_window(netuid, timing.tempo, timing.reveal_period, real.block)
    jump_to(chain_client, window.start - 1)
    refused = [e for e in k.step(None, "fall") if isinstance(e, WeightsSet)]
    assert [(e.success, e.commit_hash) for e in refused] == [(False, real.commit_hash)]
    assert "InvalidRevealCommitHashNotMatch" in refused[0].error
    assert real.commit_hash not in k.commits, "a refused reveal would be retried"
