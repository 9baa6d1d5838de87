"""What the validator's actors need to know, loaded once by the CLI and passed to each actor."""

from __future__ import annotations

import msgspec

from actors.weights_policy import NoKingPolicy

__all__ = ["ValidatorConfig"]


class ValidatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    log_path: str
    chain_url: str
    netuid: int
    profile: str = "local"
    # The validator's hotkey: a dev URI (``//Alice``) on local nets, else a wallet name and hotkey.
    # Only the crown keeper loads it.
    hotkey_uri: str = ""
    wallet_name: str = ""
    wallet_hotkey: str = ""
    challengers_per_round: int = 4
    max_eval_attempts: int = 3
    # Quiet time after the last commitment before a round opens, so commitments that land
    # together are evaluated together.
    round_settle_s: float = 2.0
    weights_retry_s: float = 6.0
    # With no king: all weight to the subnet owner's uid ("owner"), or set nothing ("none").
    no_king: NoKingPolicy = "owner"
