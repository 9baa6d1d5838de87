"""Announce a neuron's endpoint on chain (``SubtensorModule.serve_axon``)."""

from __future__ import annotations

import ipaddress

from substrateinterface import Keypair

from chain.client import ChainClient, ExtrinsicResult

__all__ = ["AXON_PROTOCOL_HTTP", "serve_axon"]

# Protocol code bittensor uses for plain HTTP axons.
AXON_PROTOCOL_HTTP = 4


def serve_axon(
    client: ChainClient,
    hotkey: Keypair,
    netuid: int,
    ip: str,
    port: int,
    *,
    protocol: int = AXON_PROTOCOL_HTTP,
    version: int = 1,
) -> ExtrinsicResult:
    """Publish ``ip:port`` for ``hotkey`` on ``netuid``; the chain refuses loopback addresses."""
    if not 0 < port < 65536:
        raise ValueError(f"port must be in 1..65535, got {port}")
    address = ipaddress.ip_address(ip)
    call = client.compose_call(
        "SubtensorModule",
        "serve_axon",
        {
            "netuid": netuid,
            "version": version,
            "ip": int(address),
            "port": port,
            "ip_type": address.version,
            "protocol": protocol,
            "placeholder1": 0,
            "placeholder2": 0,
        },
    )
    return client.submit(call, hotkey)
