"""Where miners are: their on-chain axons, the address resolver, and miner sampling.

The resolver turns an axon (the ip and port a miner registered with ``serve_axon``) into a base
URL. Production uses :class:`DirectResolver`; a local test network whose miners cannot register a
loopback address supplies its own resolver behind the same interface.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Sequence
from typing import Protocol

import msgspec

__all__ = ["AxonResolver", "DirectResolver", "Neuron", "sample_miners", "servable"]


class Neuron(msgspec.Struct, frozen=True, kw_only=True):
    """What live mode needs of one metagraph entry; ``stake`` is in whole alpha units."""

    uid: int
    hotkey: str
    stake: float
    ip: str
    port: int

    @property
    def has_axon(self) -> bool:
        return self.port > 0 and not ipaddress.ip_address(self.ip).is_unspecified


class AxonResolver(Protocol):
    def base_url(self, neuron: Neuron) -> str:
        """``http://host:port`` at which to reach ``neuron``'s axon."""
        ...


class DirectResolver:
    """The axon's registered address, as is."""

    def base_url(self, neuron: Neuron) -> str:
        host = f"[{neuron.ip}]" if ":" in neuron.ip else neuron.ip
        return f"http://{host}:{neuron.port}"


def servable(neurons: Iterable[Neuron], own_hotkey: str) -> list[Neuron]:
    """Neurons with a served axon, other than the validator itself, in uid order."""
    return sorted(
        (n for n in neurons if n.has_axon and n.hotkey != own_hotkey), key=lambda n: n.uid
    )


def sample_miners(candidates: Sequence[Neuron], k: int, rng: random.Random) -> list[Neuron]:
    """Up to ``k`` distinct miners chosen uniformly; the same ``rng`` state picks the same ones."""
    if k >= len(candidates):
        return list(candidates)
    return sorted(rng.sample(list(candidates), k), key=lambda n: n.uid)
