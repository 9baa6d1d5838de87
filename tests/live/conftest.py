"""Live mode on the real subtensor runtime: a subnet of its own, miners serving real axons.

The chain refuses loopback axons, so miners register addresses from TEST-NET-3 (203.0.113.0/24,
reserved for documentation: never a real host) with their real port, and the validator reaches
them through :class:`LoopbackResolver`, which sits behind the same interface as the real
resolver and translates only those addresses to 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from substrateinterface import Keypair
from typer.testing import CliRunner

from chain.client import ChainClient
from chain.localnet import TAO, LocalSubnet, SubnetParams, advance_blocks, bootstrap_subnet
from chain.wallet import dev_keypair
from cli.main import app as arena
from live.auth import Authenticator, AuthPolicy
from live.callers import RefreshingCallers
from live.chain_link import caller_stakes
from live.endpoints import DirectResolver, Neuron
from live.miner import Behaviour, MinerApp, MinerConfig, MinerServer, bind_socket
from live.tasks.arith import ArithTask

TEST_NET = ipaddress.ip_network("203.0.113.0/24")
MIN_STAKE = 1.0
SLOW_DELAY_S = 0.3
SECOND_VALIDATOR_URI = "//Alice//live-validator2"


class LoopbackResolver:
    """Test-only: axons registered in TEST-NET-3 are served on this machine's loopback."""

    def base_url(self, neuron: Neuron) -> str:
        if ipaddress.ip_address(neuron.ip) in TEST_NET:
            return f"http://127.0.0.1:{neuron.port}"
        return DirectResolver().base_url(neuron)


@dataclass(frozen=True)
class LiveNet:
    subnet: LocalSubnet
    second_validator: Keypair
    # behaviour -> (miner hotkey, port); "down" has an axon where nothing listens.
    miners: dict[str, tuple[Keypair, int]]
    # A registered hotkey with no stake (below the floor).
    poor: Keypair

    @property
    def url(self) -> str:
        return self.subnet.url

    @property
    def netuid(self) -> int:
        return self.subnet.netuid


def _register_second_validator(client: ChainClient, netuid: int) -> Keypair:
    owner = dev_keypair("//Alice")
    hotkey = dev_keypair(SECOND_VALIDATOR_URI)
    client.submit(
        client.compose_call(
            "SubtensorModule", "burned_register", {"netuid": netuid, "hotkey": hotkey.ss58_address}
        ),
        owner,
    )
    client.submit(
        client.compose_call(
            "SubtensorModule",
            "add_stake",
            {"hotkey": hotkey.ss58_address, "netuid": netuid, "amount_staked": 250 * TAO},
        ),
        owner,
    )
    advance_blocks(client, 1)
    return hotkey


def _serve_axon_cli(url: str, netuid: int, uri: str, ip: str, port: int) -> None:
    result = CliRunner().invoke(
        arena,
        [
            "live", "serve-axon", "--network", url, "--netuid", str(netuid),
            "--dev-key", uri, "--ip", ip, "--port", str(port),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"axon {ip}:{port} served" in result.output


def start_miner(
    url: str, netuid: int, hotkey: str, behaviour: Behaviour, policy: AuthPolicy
) -> tuple[MinerServer, RefreshingCallers]:
    """A miner server whose callers come from the real metagraph (its own chain client)."""
    client = ChainClient(url)
    callers = RefreshingCallers(lambda: caller_stakes(client, netuid), refresh_s=3600)
    callers.start()
    auth = Authenticator(hotkey, policy, callers)
    app = MinerApp(ArithTask(), auth, MinerConfig(behaviour=behaviour, slow_delay_s=SLOW_DELAY_S))
    server = MinerServer(app, bind_socket("127.0.0.1", 0))
    server.start()
    return server, callers


@pytest.fixture(scope="package")
def live_net(chain_url: str) -> Iterator[LiveNet]:
    with ChainClient(chain_url) as client:
        subnet = bootstrap_subnet(client, miners=4, params=SubnetParams(tempo=10))
        second = _register_second_validator(client, subnet.netuid)
    behaviours: list[Behaviour] = ["correct", "wrong", "slow"]
    policy = AuthPolicy(min_stake=MIN_STAKE)
    running = []
    miners: dict[str, tuple[Keypair, int]] = {}
    try:
        for i, behaviour in enumerate(behaviours):
            key = subnet.miners[i]
            server, callers = start_miner(
                chain_url, subnet.netuid, key.ss58_address, behaviour, policy
            )
            running.append((server, callers))
            miners[behaviour] = (key, server.port)
        # The "down" miner announces a port on which nothing listens.
        with bind_socket("127.0.0.1", 0) as probe:
            miners["down"] = (subnet.miners[3], probe.getsockname()[1])
        for i, (key, port) in enumerate(miners.values()):
            uri = f"//Bob//miner{subnet.miners.index(key)}"
            _serve_axon_cli(chain_url, subnet.netuid, uri, str(TEST_NET[i + 1]), port)
        yield LiveNet(subnet=subnet, second_validator=second, miners=miners, poor=subnet.miners[1])
    finally:
        for server, callers in running:
            server.stop()
            callers.stop()
