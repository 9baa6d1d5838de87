"""A king's neuron changing under it, on the real subtensor runtime: a hotkey swap keeps the
crown under the new hotkey, a deregistration dethrones it. The chain watcher's scanner turns the
blocks into events; the crown keeper's fold decides.

It runs on a subnet of its own: a swap moves a hotkey on every subnet, and filling a subnet
prunes a neuron.
"""

from __future__ import annotations

import pytest

from actors.chain_watcher import ChainScanner, WatchState
from chain.client import ChainClient
from chain.localnet import SubnetParams, bootstrap_subnet, dev_miner
from chain.wallet import dev_keypair
from events.types import (
    Event,
    HotkeySwapped,
    KingDethroned,
    MinerDeregistered,
    MinerRegistered,
)
from rules.crown_policy import CrownState
from tests.validator.test_crown_policy import round_of

pytestmark = pytest.mark.chain

# Miner hotkeys the session's other subnets never register.
KING = dev_miner(7)
FILLER = dev_miner(5)
SWAPPED = dev_keypair("//Bob//swapped")
NEWCOMER = dev_keypair("//Bob//newcomer")


def test_a_swapped_king_keeps_its_crown_and_a_deregistered_king_is_dethroned(
    chain_client: ChainClient,
) -> None:
    client = chain_client
    subnet = bootstrap_subnet(client, 0, SubnetParams(tempo=10))
    netuid = subnet.netuid
    scanner = ChainScanner(client, netuid)

    def register(hotkey: str) -> list[Event]:
        call = client.compose_call(
            "SubtensorModule", "burned_register", {"netuid": netuid, "hotkey": hotkey}
        )
        return scanner.scan_block(client.submit(call, subnet.miner_coldkey).block)

    events = scanner.snapshot(client.finalized_number()) + register(KING.ss58_address)
    uid = client.query("SubtensorModule", "Uids", [netuid, KING.ss58_address])
    crown = CrownState()
    for e in events + round_of(1, 100, [(KING.ss58_address, 1, "challenger", "pass", 0.2)]):
        crown.apply(e)
    assert crown.king is not None and crown.king.uid == uid

    swap = client.compose_call(
        "SubtensorModule",
        "swap_hotkey",
        {"hotkey": KING.ss58_address, "new_hotkey": SWAPPED.ss58_address},
    )
    swapped = scanner.scan_block(client.submit(swap, subnet.miner_coldkey).block)
    assert [(type(e), e.uid, e.old_hotkey, e.new_hotkey) for e in swapped] == [
        (HotkeySwapped, uid, KING.ss58_address, SWAPPED.ss58_address)
    ]
    assert [crown.apply(e) for e in swapped] == [[]]
    assert crown.king is not None and (crown.king.hotkey, crown.king.uid) == (
        SWAPPED.ss58_address,
        uid,
    )
    watch = WatchState().fold(events + swapped)
    assert watch.hotkeys[uid] == SWAPPED.ss58_address
    # A watcher that missed the swap's block sees it in its snapshot: the neuron kept its
    # registration block, so it is a swap, not a deregistration.
    missed = WatchState().fold(events)
    snapshot = scanner.snapshot(client.finalized_number(), missed.hotkeys, missed.since)
    assert [(type(e), e.uid, e.hotkey) for e in snapshot if hasattr(e, "hotkey")] == [
        (MinerRegistered, 0, subnet.validator.ss58_address),
        (MinerRegistered, uid, SWAPPED.ss58_address),
    ]
    assert [(e.old_hotkey, e.new_hotkey) for e in snapshot if isinstance(e, HotkeySwapped)] == [
        (KING.ss58_address, SWAPPED.ss58_address)
    ]

    # Fill the subnet and drop immunity: the next registration prunes the earliest registered
    # of the neurons with the lowest pruning score (all miners score 0), which is the king.
    cap = client.query("SubtensorModule", "SubnetworkN", [netuid]) + 1
    for function, params in [
        ("sudo_set_max_allowed_uids", {"netuid": netuid, "max_allowed_uids": cap}),
        ("sudo_set_immunity_period", {"netuid": netuid, "immunity_period": 0}),
    ]:
        client.sudo(client.compose_call("AdminUtils", function, params), subnet.sudo)
    register(FILLER.ss58_address)
    replaced = register(NEWCOMER.ss58_address)
    assert [(type(e), e.uid, e.hotkey) for e in replaced] == [
        (MinerDeregistered, uid, SWAPPED.ss58_address),
        (MinerRegistered, uid, NEWCOMER.ss58_address),
    ]
    head = client.finalized_number()
    snapshot = scanner.snapshot(head, watch.hotkeys, watch.since)
    assert [(e.uid, e.hotkey) for e in snapshot if isinstance(e, MinerDeregistered)] == [
        (uid, SWAPPED.ss58_address)
    ]
    decisions = [d for e in replaced for d in crown.apply(e)]
    assert crown.king is None
    assert [(type(d), d.hotkey) for d in decisions] == [(KingDethroned, SWAPPED.ss58_address)]
