"""Weights as subtensor accepts them: u16 values, max-upscaled, within the subnet's limits.

The pure functions decide; :func:`set_weights` reads the limits from chain, checks the rate
limit before sending, and lets the chain's own error (``SubtensorModule.NeuronNoValidatorPermit``
and friends) surface by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from substrateinterface import Keypair

from chain.client import ChainClient, ChainError
from rules.errors import ArenaError

__all__ = [
    "U16_MAX",
    "WeightLimits",
    "WeightsError",
    "WeightsRateLimited",
    "apply_max_weight",
    "blocks_until_weights_allowed",
    "WeightsResult",
    "WeightsTiming",
    "read_owner_uid",
    "read_weight_limits",
    "read_weights_timing",
    "read_weights",
    "set_weights",
    "weights_for_emit",
]

U16_MAX = 65535


class WeightsError(ArenaError, ValueError):
    """Scores cannot be turned into weights the subnet accepts."""


class WeightsRateLimited(ChainError):
    """Weights were set too recently; ``blocks_left`` until the subnet allows it again."""

    def __init__(self, blocks_left: int) -> None:
        super().__init__(
            f"weights rate limit: {blocks_left} more block(s) before weights may be set"
        )
        self.blocks_left = blocks_left


@dataclass(frozen=True)
class WeightLimits:
    """The subnet's rules for one validator, as read from chain."""

    n_uids: int
    min_allowed_weights: int
    # Largest share one uid may get, as a fraction of U16_MAX (U16_MAX means no limit).
    max_weight_limit: int
    version_key: int
    rate_limit: int
    last_update: int


@dataclass(frozen=True)
class WeightsResult:
    """Weights the chain accepted: what was sent and where it landed."""

    uids: list[int]
    weights: list[int]
    block: int
    extrinsic_hash: str


@dataclass(frozen=True)
class WeightsTiming:
    """When one validator may and should set weights on a subnet, as read from chain.

    ``last_update`` is the chain's ``LastUpdate`` for ``uid``: the block of its last set, or of
    its last commit when the subnet runs commit-reveal (a reveal does not move it).
    """

    uid: int
    head: int
    last_update: int
    tempo: int
    rate_limit: int
    activity_cutoff: int
    commit_reveal: bool
    reveal_period: int


def apply_max_weight(shares: list[float], limit: float) -> list[float]:
    """Shares summing to 1 with none above ``limit``: clip the largest, spread the excess.

    The excess goes to the unclipped uids in proportion to their share; where they have none,
    it is spread evenly over the uids with zero share. If ``limit * len(shares) < 1`` no vector
    can satisfy it, and the uniform vector is the closest.
    """
    n = len(shares)
    if n == 0 or limit >= 1.0:
        return list(shares)
    if limit * n <= 1.0:
        return [1.0 / n] * n
    out = list(shares)
    while True:
        clipped = [i for i, w in enumerate(out) if w >= limit]
        free = [i for i, w in enumerate(out) if w < limit]
        excess = sum(out[i] - limit for i in clipped)
        if excess <= 1e-12:
            return out
        for i in clipped:
            out[i] = limit
        mass = sum(out[i] for i in free)
        if mass > 0:
            for i in free:
                out[i] += excess * out[i] / mass
        else:
            for i in free:
                out[i] += excess / len(free)


def weights_for_emit(
    scores: Mapping[int, float], limits: WeightLimits
) -> tuple[list[int], list[int]]:
    """``(uids, u16 weights)`` for ``set_weights`` from non-negative scores per uid.

    Scores are normalised, clipped to the max weight limit, then scaled so the largest weight is
    U16_MAX (the chain renormalises by sum, so only ratios matter). Zero weights are dropped,
    except that uids with weight 0 are added when the subnet demands more than the scored ones.
    """
    for uid, score in scores.items():
        if not 0 <= uid < limits.n_uids:
            raise WeightsError(f"uid {uid} is not on the subnet (it has {limits.n_uids} uids)")
        if not math.isfinite(score) or score < 0:
            raise WeightsError(f"score for uid {uid} must be finite and >= 0, got {score}")
    total = sum(scores.values())
    if total <= 0:
        raise WeightsError("all scores are zero: there is nothing to weight")
    if limits.min_allowed_weights > limits.n_uids:
        raise WeightsError(
            f"the subnet wants at least {limits.min_allowed_weights} weights "
            f"but has only {limits.n_uids} uids"
        )
    shares = [scores.get(uid, 0.0) / total for uid in range(limits.n_uids)]
    if limits.max_weight_limit < U16_MAX:
        # One below the limit: the chain's integer renormalisation may round a share up.
        shares = apply_max_weight(shares, (limits.max_weight_limit - 1) / U16_MAX)
    top = max(shares)
    scaled = [round(share / top * U16_MAX) for share in shares]
    uids = [uid for uid, w in enumerate(scaled) if w > 0]
    for uid in range(limits.n_uids):
        if len(uids) >= limits.min_allowed_weights:
            break
        if scaled[uid] == 0:
            uids.append(uid)
    uids.sort()
    return uids, [scaled[uid] for uid in uids]


def blocks_until_weights_allowed(last_update: int, rate_limit: int, current_block: int) -> int:
    """0 when weights may be set at ``current_block``, else how many blocks to wait."""
    if last_update == 0 or rate_limit == 0:
        return 0
    return max(0, last_update + rate_limit - current_block)


def read_weight_limits(client: ChainClient, netuid: int, uid: int) -> WeightLimits:
    last_updates = client.query("SubtensorModule", "LastUpdate", [netuid])
    return WeightLimits(
        n_uids=client.query("SubtensorModule", "SubnetworkN", [netuid]),
        min_allowed_weights=client.query("SubtensorModule", "MinAllowedWeights", [netuid]),
        max_weight_limit=client.query("SubtensorModule", "MaxWeightsLimit", [netuid]),
        version_key=client.query("SubtensorModule", "WeightsVersionKey", [netuid]),
        rate_limit=client.query("SubtensorModule", "WeightsSetRateLimit", [netuid]),
        last_update=last_updates[uid] if uid < len(last_updates) else 0,
    )


def read_weights_timing(client: ChainClient, netuid: int, hotkey: str) -> WeightsTiming:
    """The subnet's weight timing for ``hotkey``; :class:`ChainError` if it is not registered."""
    uid = client.query("SubtensorModule", "Uids", [netuid, hotkey])
    if uid is None:
        raise ChainError(
            f"hotkey {hotkey} is not registered on netuid {netuid}: register it before it can "
            "set weights"
        )
    last_updates = client.query("SubtensorModule", "LastUpdate", [netuid])
    return WeightsTiming(
        uid=uid,
        head=client.finalized_number(),
        last_update=last_updates[uid] if uid < len(last_updates) else 0,
        tempo=client.query("SubtensorModule", "Tempo", [netuid]),
        rate_limit=client.query("SubtensorModule", "WeightsSetRateLimit", [netuid]),
        activity_cutoff=client.query("SubtensorModule", "ActivityCutoff", [netuid]),
        commit_reveal=client.query("SubtensorModule", "CommitRevealWeightsEnabled", [netuid]),
        reveal_period=client.query("SubtensorModule", "RevealPeriodEpochs", [netuid]),
    )


def read_owner_uid(client: ChainClient, netuid: int) -> int | None:
    """The uid of the subnet owner's hotkey, ``None`` if that hotkey is not registered on it."""
    owner = client.query("SubtensorModule", "SubnetOwnerHotkey", [netuid])
    return client.query("SubtensorModule", "Uids", [netuid, owner])


def read_weights(client: ChainClient, netuid: int, hotkey: str) -> dict[int, float]:
    """The weights ``hotkey`` has on chain, uid -> u16 value ({} if unregistered or none set)."""
    uid = client.query("SubtensorModule", "Uids", [netuid, hotkey])
    if uid is None:
        return {}
    row = client.query("SubtensorModule", "Weights", [netuid, uid])
    return {int(dest): float(value) for dest, value in row}


def set_weights(
    client: ChainClient, hotkey: Keypair, netuid: int, scores: Mapping[int, float]
) -> WeightsResult:
    """Set weights from scores; raises :class:`WeightsRateLimited` before sending if too early."""
    uid = client.query("SubtensorModule", "Uids", [netuid, hotkey.ss58_address])
    if uid is None:
        raise ChainError(f"hotkey {hotkey.ss58_address} is not registered on netuid {netuid}")
    limits = read_weight_limits(client, netuid, uid)
    wait = blocks_until_weights_allowed(
        limits.last_update, limits.rate_limit, client.finalized_number() + 1
    )
    if wait:
        raise WeightsRateLimited(wait)
    uids, weights = weights_for_emit(scores, limits)
    call = client.compose_call(
        "SubtensorModule",
        "set_weights",
        {"netuid": netuid, "dests": uids, "weights": weights, "version_key": limits.version_key},
    )
    result = client.submit(call, hotkey)
    return WeightsResult(
        uids=uids, weights=weights, block=result.block, extrinsic_hash=result.extrinsic_hash
    )
