"""Live mode's view of the chain, on top of :mod:`chain` (metagraph, weights, axons)."""

from __future__ import annotations

from substrateinterface import Keypair

from chain.client import ChainClient, DispatchFailed
from chain.metagraph import read_metagraph, read_neuron_uid
from chain.weights import (
    WeightsError,
    WeightsRateLimited,
    read_weight_limits,
    set_weights,
    weights_for_emit,
)
from live.endpoints import Neuron
from live.validator import WeightsOutcome

__all__ = ["RAO_PER_UNIT", "ChainLink", "caller_stakes"]

# The metagraph reports alpha stake in rao; live mode works in whole units, like TAO.
RAO_PER_UNIT = 10**9


def _neurons(client: ChainClient, netuid: int) -> list[Neuron]:
    return [
        Neuron(
            uid=n.uid,
            hotkey=n.hotkey,
            stake=n.stake / RAO_PER_UNIT,
            ip=n.axon.ip if n.axon else "0.0.0.0",
            port=n.axon.port if n.axon else 0,
        )
        for n in read_metagraph(client, netuid)
    ]


def caller_stakes(client: ChainClient, netuid: int) -> dict[str, float]:
    """Every hotkey registered on ``netuid`` and its alpha stake: who may call a miner."""
    return {n.hotkey: n.stake for n in _neurons(client, netuid)}


class ChainLink:
    """:class:`live.validator.LiveChain` on a real node. Not thread-safe: one call at a time."""

    def __init__(self, client: ChainClient, netuid: int, hotkey: Keypair) -> None:
        self.client = client
        self.netuid = netuid
        self.hotkey = hotkey

    def neurons(self) -> list[Neuron]:
        return _neurons(self.client, self.netuid)

    def block(self) -> int:
        return self.client.finalized_number()

    def set_weights(self, scores: dict[int, float]) -> WeightsOutcome:
        """Set weights from scores per uid; a refusal comes back as an unsuccessful outcome."""
        block = self.client.finalized_number()
        uid = read_neuron_uid(self.client, self.netuid, self.hotkey.ss58_address)
        if uid is None:
            return WeightsOutcome(
                block=block,
                success=False,
                error=f"validator hotkey {self.hotkey.ss58_address} is not registered on "
                f"netuid {self.netuid}; register it before setting weights",
            )
        try:
            limits = read_weight_limits(self.client, self.netuid, uid)
            uids, weights = weights_for_emit(scores, limits)
            result = set_weights(self.client, self.hotkey, self.netuid, scores)
        except (WeightsRateLimited, WeightsError) as exc:
            return WeightsOutcome(block=block, success=False, error=str(exc))
        except DispatchFailed as exc:
            return WeightsOutcome(
                block=exc.result.block,
                success=False,
                extrinsic_hash=exc.result.extrinsic_hash,
                error=exc.error,
            )
        return WeightsOutcome(
            block=result.block,
            success=True,
            uids=uids,
            weights=weights,
            extrinsic_hash=result.extrinsic_hash,
        )
