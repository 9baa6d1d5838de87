"""The ``arena`` command's shared vocabulary: one spelling, help text and default for each
option that several commands take (the chain, the wallet, Ray, the event log, the profile).

The wallet options follow btcli's (``--wallet-name``, ``--wallet-hotkey``, ``--wallet-path``);
``--hotkey-uri`` signs with a dev key on local chains instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from actors.validator_config import DEFAULT_LOG, WalletSettings

if TYPE_CHECKING:  # substrate-interface takes seconds to import; only commands that sign need it
    from substrateinterface import Keypair

__all__ = [
    "DEFAULT_LOG_PATH",
    "DEFAULT_WALLET",
    "DEFAULT_WALLET_PATH",
    "BaselineImage",
    "HotkeyUri",
    "KeysFile",
    "LogPath",
    "Netuid",
    "Network",
    "ProfileName",
    "RayAddress",
    "WalletHotkey",
    "WalletName",
    "WalletPath",
    "load_hotkey",
]

Network = Annotated[str, typer.Option(help="chain: local, finney, test or a ws:// URL")]
Netuid = Annotated[int, typer.Option(help="subnet id")]
WalletName = Annotated[str, typer.Option(help="wallet name (bittensor's wallet layout)")]
WalletHotkey = Annotated[str, typer.Option(help="hotkey name in the wallet")]
WalletPath = Annotated[str, typer.Option(help="directory holding the wallets")]
HotkeyUri = Annotated[
    str, typer.Option(help="sign with a dev key URI such as //Alice instead (local chains only)")
]
RayAddress = Annotated[
    str,
    typer.Option(
        help="Ray cluster: auto (this host's), an address, or a dashboard URL for jobs",
        envvar="RAY_ADDRESS",
    ),
]
LogPath = Annotated[Path, typer.Option("--log", help="event log file (DuckDB)")]
KeysFile = Annotated[Path | None, typer.Option(help="API keys file [default: .arena/keys.json]")]
ProfileName = Annotated[str, typer.Option("--profile", help="local, sn-h200 or sn-h200x8")]
BaselineImage = Annotated[
    str | None, typer.Option(help="the baseline pinned by digest [default: the profile's]")
]

DEFAULT_LOG_PATH = Path(DEFAULT_LOG)
# btcli's wallet and hotkey name and wallet directory when none is given, as validator.toml's
DEFAULT_WALLET = WalletSettings().name
DEFAULT_WALLET_PATH = WalletSettings().path


def load_hotkey(wallet_name: str, wallet_hotkey: str, wallet_path: str, hotkey_uri: str) -> Keypair:
    """The hotkey the wallet options name; a bad wallet is a usage error that says what to fix."""
    from chain.wallet import WalletError, dev_keypair, load_wallet

    try:
        if hotkey_uri:
            return dev_keypair(hotkey_uri)
        if not (wallet_name and wallet_hotkey):
            raise typer.BadParameter("give --wallet-name and --wallet-hotkey (or --hotkey-uri)")
        return load_wallet(wallet_name, wallet_hotkey, Path(wallet_path).expanduser()).hotkey
    except WalletError as exc:
        raise typer.BadParameter(str(exc)) from None
