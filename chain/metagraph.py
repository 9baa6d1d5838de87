"""A subnet's neurons at one block, read from storage and decoded into typed structs."""

from __future__ import annotations

import ipaddress

import msgspec

from chain.client import ChainClient

__all__ = ["AxonInfo", "Neuron", "read_metagraph", "read_neuron_uid"]


class AxonInfo(msgspec.Struct, frozen=True):
    ip: str
    port: int
    protocol: int
    version: int
    block: int


class Neuron(msgspec.Struct, frozen=True):
    uid: int
    hotkey: str
    coldkey: str
    axon: AxonInfo | None
    validator_permit: bool
    # The hotkey's alpha stake on this subnet, in rao.
    stake: int
    last_update: int


def _axon(value: dict | None) -> AxonInfo | None:
    if not value or not value.get("ip"):
        return None
    kind = value.get("ip_type", 4)
    ip = ipaddress.IPv4Address(value["ip"]) if kind == 4 else ipaddress.IPv6Address(value["ip"])
    return AxonInfo(
        ip=str(ip),
        port=int(value["port"]),
        protocol=int(value["protocol"]),
        version=int(value["version"]),
        block=int(value["block"]),
    )


def _at(values: list, index: int, default):
    return values[index] if index < len(values) else default


def read_neuron_uid(
    client: ChainClient, netuid: int, hotkey: str, block_hash: str | None = None
) -> int | None:
    """The hotkey's uid on ``netuid``, ``None`` if it is not registered there."""
    return client.query("SubtensorModule", "Uids", [netuid, hotkey], block_hash=block_hash)


def read_metagraph(client: ChainClient, netuid: int, block_hash: str | None = None) -> list[Neuron]:
    """Every neuron of ``netuid`` ordered by uid (a handful of requests, batched per item)."""
    keys = sorted(client.query_map("SubtensorModule", "Keys", [netuid], block_hash=block_hash))
    hotkeys = [hotkey for _, hotkey in keys]
    owners = client.query_many("SubtensorModule", "Owner", [[h] for h in hotkeys], block_hash)
    stakes = client.query_many(
        "SubtensorModule", "TotalHotkeyAlpha", [[h, netuid] for h in hotkeys], block_hash
    )
    axons = client.query_many(
        "SubtensorModule", "Axons", [[netuid, h] for h in hotkeys], block_hash
    )
    permits = client.query("SubtensorModule", "ValidatorPermit", [netuid], block_hash=block_hash)
    updates = client.query("SubtensorModule", "LastUpdate", [netuid], block_hash=block_hash)
    return [
        Neuron(
            uid=uid,
            hotkey=hotkey,
            coldkey=owner,
            axon=_axon(axon),
            validator_permit=bool(_at(permits, uid, False)),
            stake=int(stake),
            last_update=int(_at(updates, uid, 0)),
        )
        for (uid, hotkey), owner, stake, axon in zip(keys, owners, stakes, axons, strict=True)
    ]
