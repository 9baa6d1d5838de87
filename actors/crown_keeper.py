"""CrownKeeper actor: applies the crown rule to finished rounds and sets weights on chain.

Decisions come from :mod:`rules.crown_policy` (a fold over input events only). The one effect
is weights: the actor compares the weights the policy wants (:mod:`actors.weights_policy`) with
the weights the chain holds for the validator, and sets them when they differ, within the
subnet's rate limit, retrying failures. Every attempt is recorded as ``WeightsSet``. The chain,
not the log, says whether weights are in place, so a restart neither skips nor repeats a set.
It is the only actor that holds the validator's hotkey.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from substrateinterface import Keypair

from actors.fold_loop import FoldLoop
from actors.log_client import LogClient
from actors.validator_config import ValidatorConfig
from actors.weights_policy import desired_weights
from chain.client import ChainClient, ChainError
from chain.wallet import dev_keypair, load_wallet
from chain.weights import (
    WeightsRateLimited,
    read_weights,
    set_weights,
)
from events.types import WeightsSet
from rules.crown_policy import INPUT_TYPES, CrownState

__all__ = [
    "CrownKeeper",
    "load_validator_key",
    "POLL_S",
]

log = logging.getLogger(__name__)
POLL_S = 1.0


def load_validator_key(config: ValidatorConfig) -> Keypair:
    """The validator's hotkey, from a dev URI or the wallet directory."""
    if config.hotkey_uri:
        return dev_keypair(config.hotkey_uri)
    if not (config.wallet_name and config.wallet_hotkey):
        raise ValueError(
            "the validator needs a hotkey: set hotkey_uri (local nets) or wallet_name and "
            "wallet_hotkey"
        )
    return load_wallet(config.wallet_name, config.wallet_hotkey).hotkey


class CrownKeeper:
    """Ray actor body; the supervisor starts it detached as ``arena.crown_keeper``."""

    def __init__(self, config: ValidatorConfig) -> None:
        self.config = config
        self.keypair = load_validator_key(config)
        self.state = CrownState()
        self.log = LogClient()
        self.fold = FoldLoop(
            self.log, INPUT_TYPES, lambda event: self.state.apply(event), name="crown keeper"
        )
        self.chain = ChainClient(config.chain_url)
        self.in_place: dict[int, float] | None = None
        self.attempt = 0
        self.next_try = 0.0
        self.last_weights: WeightsSet | None = None
        self.loop = asyncio.get_running_loop().create_task(
            self.fold.run_forever(POLL_S, self._after_step)
        )

    async def _after_step(self) -> None:
        if not self.fold.caught_up:
            return
        king = self.state.king
        wanted = desired_weights(None if king is None else king.uid)
        if not wanted or wanted == self.in_place or time.monotonic() < self.next_try:
            return
        event = await asyncio.to_thread(self._reconcile, wanted)
        if event is not None:
            self.last_weights = event
            await self.log.append_async([event])

    def _reconcile(self, wanted: dict[int, float]) -> WeightsSet | None:
        """Make the chain hold ``wanted``; return the attempt's record, None if nothing was sent."""
        netuid = self.config.netuid
        hotkey = self.keypair.ss58_address
        king = self.state.king
        reason = "" if king is None else king.eval_id
        try:
            if _same(read_weights(self.chain, netuid, hotkey), wanted):
                self.in_place = wanted
                return None
            self.attempt += 1
            result = set_weights(self.chain, self.keypair, netuid, wanted)
        except WeightsRateLimited as exc:
            self.next_try = time.monotonic() + self.config.weights_retry_s
            log.info("weights rate-limited: %s", exc)
            return None
        except ChainError as exc:
            self.next_try = time.monotonic() + self.config.weights_retry_s
            return WeightsSet(
                netuid=netuid,
                uids=sorted(wanted),
                weights=[],
                block=self._head_or_zero(),
                success=False,
                error=str(exc)[:500],
                attempt=self.attempt,
                reason_eval_id=reason,
            )
        self.in_place = wanted
        return WeightsSet(
            netuid=netuid,
            uids=list(result.uids),
            weights=list(result.weights),
            block=result.block,
            success=True,
            extrinsic_hash=result.extrinsic_hash,
            attempt=self.attempt,
            reason_eval_id=reason,
        )

    def _head_or_zero(self) -> int:
        try:
            return self.chain.finalized_number()
        except ChainError:
            return 0

    async def status(self) -> dict[str, Any]:
        king = self.state.king
        return {
            "seq": self.fold.seq,
            "caught_up": self.fold.caught_up,
            "king": None if king is None else (king.hotkey, king.uid, king.score, king.digest),
            "weights_in_place": self.in_place,
            "last_weights": None if self.last_weights is None else self.last_weights.key,
        }


def _same(on_chain: dict[int, float], wanted: dict[int, float]) -> bool:
    """Weights are compared as shares: the chain stores u16 values, not the floats we asked for."""
    total = sum(on_chain.values())
    if total <= 0:
        return False
    shares = {uid: w / total for uid, w in on_chain.items() if w > 0}
    return shares.keys() == wanted.keys() and all(
        abs(shares[uid] - w / sum(wanted.values())) < 1e-3 for uid, w in wanted.items()
    )
