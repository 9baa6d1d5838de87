"""The validator's settings: what an operator writes (``validator.toml`` plus flags) and the
config every actor gets, resolved from it once where the validator starts.

    load_settings(path, overrides)  -> ValidatorSettings   the file's tables, flags on top;
                                                            unknown fields refused
    resolve(settings)               -> ValidatorConfig     profile, chain URL and paths
                                                            resolved; shipped to actors as data

Actors read nothing from the environment: whatever they need is a field here. (Ray's own
variables, and Docker's ``DOCKER_HOST`` on the node where a container runs, stay theirs.)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec

from actors.weights_policy import NoKingPolicy
from harness.evidence import DEFAULT_KEEP
from harness.profile import Profile, resolve_profile
from rules.errors import ArenaError
from serve_apps.gateway_config import GatewayConfig

__all__ = [
    "DEFAULT_LOG",
    "ChainSettings",
    "EvaluationSettings",
    "RoundSettings",
    "SettingsError",
    "ValidatorConfig",
    "ValidatorSettings",
    "WalletSettings",
    "load_settings",
    "resolve",
]

# The one default event log location, for every command that reads or writes the log.
DEFAULT_LOG = ".arena/events.duckdb"


class SettingsError(ArenaError, ValueError):
    """validator.toml or a flag is wrong; the message names the field and what to write."""


# Every table refuses fields it does not know: a misspelt setting is an error, not a default.
_TABLE = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True}


class ChainSettings(msgspec.Struct, **_TABLE):
    network: str = "local"  # local, finney, test or a ws(s):// URL
    netuid: int


class WalletSettings(msgspec.Struct, **_TABLE):
    # A bittensor wallet (name and hotkey under path), or a dev key URI on local nets; the
    # defaults are btcli's, and the CLI's (cli/options.py).
    name: str = "default"
    hotkey: str = "default"
    path: str = "~/.bittensor/wallets"
    uri: str = ""


class EvaluationSettings(msgspec.Struct, **_TABLE):
    profile: str = "local"
    # Empty: the profile's own (README: Pinning the baseline, Weights on a GPU node).
    baseline_image: str = ""
    model_dir: str = ""
    model_manifest: str = ""
    # How many evaluations' evidence is kept beside the log (the newest).
    evidence_keep: int = DEFAULT_KEEP


class RoundSettings(msgspec.Struct, **_TABLE):
    challengers_per_round: int = 4
    max_eval_attempts: int = 3
    # Quiet time after the last commitment before a round opens, so commitments that land
    # together are evaluated together.
    round_settle_s: float = 2.0
    weights_retry_s: float = 6.0
    # With no king: all weight to the subnet owner's uid ("owner"), or set nothing ("none").
    no_king: NoKingPolicy = "owner"


class ValidatorSettings(msgspec.Struct, **_TABLE):
    """validator.toml: one table per concern; ``[gateway]`` absent means no gateway."""

    chain: ChainSettings
    wallet: WalletSettings = WalletSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    rounds: RoundSettings = RoundSettings()
    gateway: GatewayConfig | None = None
    log: str = DEFAULT_LOG


class ValidatorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the validator's actors know; built by :func:`resolve` (or a test) and never changed."""

    log_path: str
    chain_url: str
    netuid: int
    profile: Profile
    # The validator's hotkey: a dev URI (``//Alice``) on local nets, else a wallet name and hotkey.
    # Only the crown keeper loads it.
    hotkey_uri: str = ""
    wallet_name: str = ""
    wallet_hotkey: str = ""
    wallet_path: str = "~/.bittensor/wallets"
    challengers_per_round: int = 4
    max_eval_attempts: int = 3
    round_settle_s: float = 2.0
    weights_retry_s: float = 6.0
    no_king: NoKingPolicy = "owner"
    evidence_keep: int = DEFAULT_KEEP
    # The gateway for organic traffic, started beside the actors; None for none.
    gateway: GatewayConfig | None = None


def load_settings(path: Path | None, overrides: dict[str, Any]) -> ValidatorSettings:
    """The settings in ``path`` (none: every default), with ``overrides`` on top.

    ``overrides`` maps dotted field names (``chain.netuid``, ``log``) to values; a None value
    is a flag that was not given.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SettingsError(
                f"no settings file at {path}: write one (README: Running a validator)"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path} is not TOML: {exc}") from None
    for dotted, value in overrides.items():
        if value is None:
            continue
        *tables, field = dotted.split(".")
        target = data
        for table in tables:
            target = target.setdefault(table, {})
        target[field] = value
    try:
        return msgspec.convert(data, ValidatorSettings)
    except msgspec.ValidationError as exc:
        where = f"{path}" if path is not None else "the flags"
        raise SettingsError(f"{where}: {exc}") from None


def resolve(settings: ValidatorSettings) -> ValidatorConfig:
    """The actors' config: the profile with this site's paths, the chain URL, absolute paths."""
    from chain.client import resolve_network

    e, r, w = settings.evaluation, settings.rounds, settings.wallet
    try:
        profile = resolve_profile(
            e.profile,
            baseline_image=e.baseline_image,
            model_dir=e.model_dir,
            model_manifest=e.model_manifest,
        )
        chain_url = resolve_network(settings.chain.network)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    gateway = settings.gateway
    if gateway is not None:
        gateway = msgspec.structs.replace(
            gateway,
            keys_file=str(Path(gateway.keys_file).expanduser().resolve()),
            served_model_name=profile.served_model_name,
        )
    return ValidatorConfig(
        log_path=str(Path(settings.log).expanduser().resolve()),
        chain_url=chain_url,
        netuid=settings.chain.netuid,
        profile=profile,
        hotkey_uri=w.uri,
        wallet_name=w.name,
        wallet_hotkey=w.hotkey,
        wallet_path=str(Path(w.path).expanduser()),
        challengers_per_round=r.challengers_per_round,
        max_eval_attempts=r.max_eval_attempts,
        round_settle_s=r.round_settle_s,
        weights_retry_s=r.weights_retry_s,
        no_king=r.no_king,
        evidence_keep=e.evidence_keep,
        gateway=gateway,
    )
