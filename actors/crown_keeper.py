"""CrownKeeper actor: applies the crown rule to finished rounds and keeps weights on chain.

Decisions come from :mod:`rules.crown_policy` (a fold over input events only). The one effect
is weights, kept by :class:`actors.weights_keeper.WeightsKeeper`: set when the king changes and
refreshed on the chain's schedule while it does not (committed and revealed where the subnet
runs commit-reveal), each attempt recorded as ``WeightsSet``. The keeper folds its own past
records and reads the chain's ``LastUpdate``, so a restart neither skips a set or a reveal nor
sends one twice inside the rate limit. It is the only actor that holds the validator's hotkey.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from substrateinterface import Keypair

from actors.fold_loop import FoldLoop
from actors.log_client import LogClient
from actors.validator_config import ValidatorConfig
from actors.weights_keeper import HISTORY_TYPES, WeightsKeeper
from chain.client import ChainClient
from chain.wallet import dev_keypair, load_wallet
from events.log import type_name
from events.types import Event, WeightsSet
from rules.crown_policy import INPUT_TYPES, CrownState

__all__ = [
    "CrownKeeper",
    "load_validator_key",
    "POLL_S",
]

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
    return load_wallet(config.wallet_name, config.wallet_hotkey, Path(config.wallet_path)).hotkey


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
        self.weights: WeightsKeeper | None = None
        self.last_weights: WeightsSet | None = None
        self.loop = asyncio.get_running_loop().create_task(
            self.fold.run_forever(POLL_S, self._after_step)
        )

    async def _after_step(self) -> None:
        if not self.fold.caught_up:
            return
        king = self.state.king
        king_uid, reason = (None, "") if king is None else (king.uid, king.eval_id)
        events = await asyncio.to_thread(self._keep_weights, king_uid, reason)
        if events:
            self.last_weights = next(
                (e for e in reversed(events) if isinstance(e, WeightsSet)), self.last_weights
            )
            await self.log.append_async(events)

    def _keep_weights(self, king_uid: int | None, reason: str) -> list[Event]:
        if self.weights is None:
            names = [type_name(t) for t in HISTORY_TYPES]
            self.weights = WeightsKeeper(
                self.chain,
                self.keypair,
                self.config.netuid,
                no_king=self.config.no_king,
                retry_s=self.config.weights_retry_s,
                history=(r.event for r in self.log.replay(0, names)),
            )
        return self.weights.step(king_uid, reason)

    async def status(self) -> dict[str, Any]:
        king = self.state.king
        return {
            "seq": self.fold.seq,
            "caught_up": self.fold.caught_up,
            "king": None if king is None else (king.hotkey, king.uid, king.score, king.digest),
            "weights_in_place": None if self.weights is None else self.weights.in_place,
            "last_weights": None if self.last_weights is None else self.last_weights.key,
        }
