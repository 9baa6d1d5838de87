"""Live mode on the real subtensor runtime: the session's subnet, miners serving real axons."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from substrateinterface import Keypair

from chain.axon import serve_axon
from chain.client import ChainClient
from chain.localnet import LocalSubnet
from live.auth import AuthPolicy
from live.miner import MinerServer, bind_socket
from tests.live.livenet import (
    MIN_STAKE,
    TEST_NET,
    LiveNet,
    move_stake,
    serve_axon_cli,
    stake_of,
    start_miner,
)


@pytest.fixture(scope="package")
def live_net(local_subnet: LocalSubnet) -> Iterator[LiveNet]:
    """The session's subnet with three miners serving axons, one down, and two validators.

    The second validator gets a quarter of the first's stake for the package and gives it back
    after, so the shared subnet keeps its stakes (the axons and weights set here stay).
    """
    subnet = local_subnet
    client = ChainClient(subnet.url)
    validator = subnet.validator.ss58_address
    second = subnet.miners[3]
    moved = stake_of(client, subnet.netuid, validator) // 4
    lent = move_stake(client, subnet.sudo, validator, second.ss58_address, subnet.netuid, moved)
    policy = AuthPolicy(min_stake=MIN_STAKE)
    servers: list[MinerServer] = []
    miners: dict[str, tuple[Keypair, int]] = {}
    try:
        for i, behaviour in enumerate(("correct", "wrong", "slow")):
            key = subnet.miners[i]
            servers.append(start_miner(client, subnet.netuid, key.ss58_address, behaviour, policy))
            miners[behaviour] = (key, servers[-1].port)
        with bind_socket("127.0.0.1", 0) as probe:  # a port on which nothing listens
            miners["down"] = (second, probe.getsockname()[1])
        for i, (key, port) in enumerate(miners.values()):
            ip = str(TEST_NET[i + 1])
            if i == 0:  # once through the command line miners use
                serve_axon_cli(subnet.url, subnet.netuid, f"//Bob//miner{i}", ip, port)
            else:
                serve_axon(client, key, subnet.netuid, ip, port)
        yield LiveNet(subnet=subnet, client=client, miners=miners)
    finally:
        for server in servers:
            server.stop()
        move_stake(client, subnet.sudo, second.ss58_address, validator, subnet.netuid, lent)
        client.close()
