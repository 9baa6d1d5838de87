"""Keys for signing: the standard bittensor wallet directory layout, and dev keys from URIs.

Layout (what ``btcli`` writes): ``<root>/<name>/hotkeys/<hotkey>`` is an unencrypted JSON keyfile
holding ``secretPhrase``/``secretSeed``/``ss58Address``; ``<root>/<name>/coldkeypub.txt`` holds the
coldkey's public part. Secrets never leave this module in messages or reprs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from substrateinterface import Keypair

from rules.errors import ArenaError

__all__ = [
    "Wallet",
    "WalletError",
    "dev_keypair",
    "load_coldkeypub",
    "load_hotkey",
    "load_wallet",
    "write_hotkey",
]


class WalletError(ArenaError, ValueError):
    """A wallet file is missing, unreadable or malformed; messages name the file, never a secret."""


@dataclass(frozen=True, repr=False)
class Wallet:
    """A hotkey that can sign, and the ss58 address of the coldkey that owns it."""

    name: str
    hotkey_name: str
    hotkey: Keypair
    coldkey_ss58: str

    def __repr__(self) -> str:
        return f"Wallet({self.name}/{self.hotkey_name}, hotkey={self.hotkey.ss58_address})"


def dev_keypair(uri: str) -> Keypair:
    """Keypair from a dev URI such as ``//Alice`` or ``//miner/3`` (sr25519, local nets only)."""
    if not uri.startswith("//"):
        raise WalletError(f"dev key URI must start with '//' (e.g. //Alice), got {uri!r}")
    return Keypair.create_from_uri(uri)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise WalletError(
            f"wallet file {path} does not exist; create it with btcli or `arena keys`"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        # The message omits the content: the file holds a secret.
        raise WalletError(
            f"wallet file {path} is not readable JSON ({type(exc).__name__}); "
            "encrypted keyfiles are not supported, hotkeys must be unencrypted"
        ) from None
    if not isinstance(data, dict):
        raise WalletError(f"wallet file {path} must hold a JSON object")
    return data


def load_hotkey(path: Path) -> Keypair:
    """The signing keypair stored in a bittensor keyfile; checks it matches its ``ss58Address``."""
    data = _read_json(path)
    if phrase := data.get("secretPhrase"):
        keypair = Keypair.create_from_mnemonic(phrase)
    elif seed := data.get("secretSeed"):
        keypair = Keypair.create_from_seed(seed)
    else:
        raise WalletError(f"wallet file {path} has neither secretPhrase nor secretSeed")
    expected = data.get("ss58Address")
    if expected and expected != keypair.ss58_address:
        raise WalletError(
            f"wallet file {path}: ss58Address {expected} does not match the key its secret derives "
            f"({keypair.ss58_address}); the file is corrupt or was edited"
        )
    return keypair


def load_coldkeypub(path: Path) -> str:
    """The coldkey ss58 address from ``coldkeypub.txt`` (JSON with ``ss58Address``)."""
    address = _read_json(path).get("ss58Address")
    if not isinstance(address, str) or not address:
        raise WalletError(f"wallet file {path} has no ss58Address")
    try:
        Keypair(ss58_address=address)
    except ValueError:
        raise WalletError(f"wallet file {path}: {address!r} is not a valid ss58 address") from None
    return address


def load_wallet(name: str, hotkey: str, root: Path) -> Wallet:
    """Wallet ``name`` with hotkey ``hotkey`` under ``root`` (``~/.bittensor/wallets``)."""
    wallet_dir = Path(root).expanduser() / name
    if not wallet_dir.is_dir():
        raise WalletError(f"wallet {name!r} not found: {wallet_dir} is not a directory")
    return Wallet(
        name=name,
        hotkey_name=hotkey,
        hotkey=load_hotkey(wallet_dir / "hotkeys" / hotkey),
        coldkey_ss58=load_coldkeypub(wallet_dir / "coldkeypub.txt"),
    )


def _hex(value: bytes | str) -> str:
    return "0x" + (value.hex() if isinstance(value, bytes) else value.removeprefix("0x"))


def _keyfile_json(keypair: Keypair, phrase: str | None) -> dict:
    return {
        "accountId": "0x" + keypair.public_key.hex(),
        "publicKey": "0x" + keypair.public_key.hex(),
        "secretPhrase": phrase,
        "secretSeed": _hex(keypair.seed_hex) if keypair.seed_hex else None,
        "ss58Address": keypair.ss58_address,
    }


def write_hotkey(name: str, hotkey: str, mnemonic: str, coldkey_ss58: str, root: Path) -> Path:
    """Write a hotkey keyfile (mode 600) and ``coldkeypub.txt`` in the standard layout."""
    keypair = Keypair.create_from_mnemonic(mnemonic)
    wallet_dir = Path(root).expanduser() / name
    (wallet_dir / "hotkeys").mkdir(parents=True, exist_ok=True)
    path = wallet_dir / "hotkeys" / hotkey
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(_keyfile_json(keypair, mnemonic)))
    coldkey_pub = Keypair(ss58_address=coldkey_ss58)
    (wallet_dir / "coldkeypub.txt").write_text(
        json.dumps(
            {
                "accountId": "0x" + coldkey_pub.public_key.hex(),
                "publicKey": "0x" + coldkey_pub.public_key.hex(),
                "ss58Address": coldkey_ss58,
            }
        )
    )
    return path
