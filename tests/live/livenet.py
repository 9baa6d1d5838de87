"""Helpers for live mode on the real subtensor runtime (the fixture is in ``conftest.py``).

The chain refuses loopback axons, so miners register addresses from TEST-NET-3 (203.0.113.0/24,
reserved for documentation: never a real host) with their real port, and the validator reaches
them through :class:`LoopbackResolver`, which sits behind the same interface as the real
resolver and translates only those addresses to 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from substrateinterface import Keypair
from typer.testing import CliRunner

from chain.client import ChainClient
from chain.localnet import LocalSubnet
from chain.metagraph import read_metagraph
from cli.main import app as arena
from live.auth import Authenticator, AuthPolicy
from live.callers import RefreshingCallers
from live.chain_link import caller_stakes
from live.endpoints import DirectResolver, Neuron
from live.miner import Behaviour, MinerApp, MinerConfig, MinerServer, bind_socket
from live.tasks.arith import ArithTask

TEST_NET = ipaddress.ip_network("203.0.113.0/24")
MIN_STAKE = 1.0
# Far above any honest latency on a loaded 2-core machine, so the ranking cannot flip.
SLOW_DELAY_S = 4.0


class LoopbackResolver:
    """Test-only: axons registered in TEST-NET-3 are served on this machine's loopback."""

    def base_url(self, neuron: Neuron) -> str:
        if ipaddress.ip_address(neuron.ip) in TEST_NET:
            return f"http://127.0.0.1:{neuron.port}"
        return DirectResolver().base_url(neuron)


@dataclass(frozen=True)
class LiveNet:
    subnet: LocalSubnet
    # One client for the whole package: a fresh one costs seconds of metadata loading.
    client: ChainClient
    # behaviour -> (miner hotkey, port); "down" has an axon where nothing listens.
    miners: dict[str, tuple[Keypair, int]]

    @property
    def url(self) -> str:
        return self.subnet.url

    @property
    def netuid(self) -> int:
        return self.subnet.netuid

    @property
    def second_validator(self) -> Keypair:
        """The down miner's hotkey, holding a quarter of the validator's stake."""
        return self.miners["down"][0]

    @property
    def poor(self) -> Keypair:
        """A registered hotkey without stake."""
        return self.miners["wrong"][0]


def move_stake(
    client: ChainClient, owner: Keypair, src: str, dst: str, netuid: int, alpha: int
) -> int:
    """Move ``owner``'s alpha from hotkey ``src`` to ``dst``; returns the alpha ``dst`` got."""
    call = client.compose_call(
        "SubtensorModule",
        "move_stake",
        {
            "origin_hotkey": src,
            "destination_hotkey": dst,
            "origin_netuid": netuid,
            "destination_netuid": netuid,
            "alpha_amount": alpha,
        },
    )
    result = client.submit(call, owner)
    added = [
        e["attributes"]
        for e in result.events
        if (e["module_id"], e["event_id"]) == ("SubtensorModule", "StakeAdded")
    ]
    return int(added[0][3])


def stake_of(client: ChainClient, netuid: int, hotkey: str) -> int:
    return next(n.stake for n in read_metagraph(client, netuid) if n.hotkey == hotkey)


def serve_axon_cli(url: str, netuid: int, uri: str, ip: str, port: int) -> None:
    result = CliRunner().invoke(
        arena,
        [
            "live", "serve-axon", "--network", url, "--netuid", str(netuid),
            "--hotkey-uri", uri, "--ip", ip, "--port", str(port),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"axon {ip}:{port} served" in result.output


def start_miner(
    client: ChainClient, netuid: int, hotkey: str, behaviour: Behaviour, policy: AuthPolicy
) -> MinerServer:
    """A miner server whose callers are read from the real metagraph once, at start."""
    callers = RefreshingCallers(lambda: caller_stakes(client, netuid), refresh_s=3600)
    callers.refresh()
    auth = Authenticator(hotkey, policy, callers)
    app = MinerApp(ArithTask(), auth, MinerConfig(behaviour=behaviour, slow_delay_s=SLOW_DELAY_S))
    server = MinerServer(app, bind_socket("127.0.0.1", 0))
    server.start()
    return server
