"""The watcher survives its node dying: a new node on the same state, nothing lost or repeated."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.chain_watcher import ChainWatch
from chain.client import ChainClient
from chain.commitment import commit_image, read_commitment
from chain.localnet import LocalSubnet, SubnetParams, advance_blocks, bootstrap_subnet, dev_miner
from events.client import LocalLogClient
from events.log import EventLog
from events.types import Event, MinerDeregistered, MinerRegistered, SubmissionCommitted
from tests.fixtures.chain import extra_chain

pytestmark = pytest.mark.chain

DIGEST = "sha256:" + "7c" * 32


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


def replace_a_neuron(client: ChainClient, subnet: LocalSubnet) -> tuple[int, str, str]:
    """Cap the subnet one above its size, drop immunity, register two more: the second
    registration prunes a neuron. Returns the pruned uid, its old hotkey and the new one."""
    netuid = subnet.netuid
    cap = client.query("SubtensorModule", "SubnetworkN", [netuid]) + 1
    for function, params in [
        ("sudo_set_max_allowed_uids", {"netuid": netuid, "max_allowed_uids": cap}),
        ("sudo_set_immunity_period", {"netuid": netuid, "immunity_period": 0}),
    ]:
        client.sudo(client.compose_call("AdminUtils", function, params), subnet.sudo)
    filler, newcomer = (dev_miner(len(subnet.miners) + i).ss58_address for i in range(2))
    for hotkey in (filler, newcomer):
        if hotkey == newcomer:
            before = dict(client.query_map("SubtensorModule", "Keys", [netuid]))
        register = client.compose_call(
            "SubtensorModule", "burned_register", {"netuid": netuid, "hotkey": hotkey}
        )
        client.submit(register, subnet.miner_coldkey)
    uid = client.query("SubtensorModule", "Uids", [netuid, newcomer])
    assert client.query("SubtensorModule", "SubnetworkN", [netuid]) == cap
    return uid, before[uid], newcomer


def test_watch_recovers_after_the_node_is_killed_and_restarted(tmp_path: Path) -> None:
    db = tmp_path / "chain.sqlite"
    with contextlib.ExitStack() as nodes:
        first = nodes.enter_context(extra_chain(miners=2, db_path=db))
        client = ChainClient(first.url)
        subnet = bootstrap_subnet(client, 2, SubnetParams(tempo=2))
        emitted: list[Event] = []
        watch = ChainWatch(ChainClient(first.url), subnet.netuid)
        stop = threading.Event()
        thread = threading.Thread(target=watch.run, args=(first.url, stop, emitted.extend))
        thread.start()
        try:
            head = client.finalized_number()
            wait_until(lambda: watch.scanned >= head, "the watcher's first snapshot")
            before = commit_image(
                client, subnet.miners[0], subnet.netuid, f"127.0.0.1:5000/m0:a@{DIGEST}"
            )
            wait_until(
                lambda: any(
                    e.key == f"{subnet.miners[0].ss58_address}@{before.block}" for e in emitted
                ),
                "the first commitment",
            )
            # chopsticks writes blocks to its database behind the head: bury the commitment
            # so the node killed with SIGKILL has stored it.
            advance_blocks(client, 3)
            first.stop(kill=True)
            nodes.enter_context(extra_chain(miners=2, db_path=db, resume=True, port=first.port))
            kept = read_commitment(client, subnet.netuid, subnet.miners[0].ss58_address)
            assert kept is not None and kept.block == before.block
            after = commit_image(
                client, subnet.miners[1], subnet.netuid, f"127.0.0.1:5000/m1:b@{DIGEST}"
            )
            assert after.block > before.block
            wait_until(lambda: watch.scanned >= after.block, "the watcher to pass the restart")
            replaced_uid, replaced, newcomer = replace_a_neuron(client, subnet)
            head = client.finalized_number()
            wait_until(lambda: watch.scanned >= head, "the watcher to see the replacement")
        finally:
            stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive()

        gone = [e for e in emitted if isinstance(e, MinerDeregistered)]
        assert [(e.uid, e.hotkey) for e in gone] == [(replaced_uid, replaced)]
        assert any(
            isinstance(e, MinerRegistered) and (e.uid, e.hotkey) == (replaced_uid, newcomer)
            for e in emitted
        )
        committed = [e for e in emitted if isinstance(e, SubmissionCommitted)]
        assert [(e.hotkey, e.block) for e in committed] == [
            (subnet.miners[0].ss58_address, before.block),
            (subnet.miners[1].ss58_address, after.block),
        ]
        keys = [(type(e).__name__, e.key) for e in emitted]
        assert len(keys) == len(set(keys)), "an event was emitted twice"
        registered = {e.hotkey for e in emitted if isinstance(e, MinerRegistered)}
        filler = dev_miner(len(subnet.miners)).ss58_address
        assert registered == {subnet.validator.ss58_address, filler, newcomer} | {
            m.ss58_address for m in subnet.miners
        }

        # A restarted watcher folds the log and rescans: everything it finds is already there.
        log = LocalLogClient(EventLog(tmp_path / "events.duckdb"))
        log.append(emitted)
        resumed = ChainWatch.from_log(client, subnet.netuid, log)
        assert resumed.state.last_block == max(e.block for e in emitted)
        again = resumed.catch_up(head)
        assert {(type(e).__name__, e.key) for e in again} <= set(keys)
        assert log.append(again) and log.last_seq() == len(emitted)
