"""API keys for the gateway, kept in one small JSON file that holds only SHA-256 hashes.

The secret (``sk-arena-...``) is shown once, when the key is created; the file keeps its hash, a
public ``key_id`` (used in usage events and on the command line) and the key's rate limit.
Keys are random 256-bit tokens, so a plain SHA-256 is enough: there is nothing to brute-force.
The CLI writes the file (``arena keys create|revoke|list``); the gateway re-reads it when it
changes, so a revocation takes effect on the next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from serve_apps.errors import ServeError

__all__ = [
    "ApiKey",
    "KeyRing",
    "KeyStoreError",
    "create_key",
    "DEFAULT_KEYS_FILE",
    "default_keys_path",
    "hash_secret",
    "load_keys",
    "revoke_key",
    "SECRET_PREFIX",
]

SECRET_PREFIX = "sk-arena-"


class KeyStoreError(ServeError):
    """The keys file is unreadable, or a key named on the command line does not exist."""


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    name: str
    key_hash: str
    created_at: float
    rate_per_s: float
    burst: int
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class _KeyFile(msgspec.Struct):
    keys: list[ApiKey] = []


DEFAULT_KEYS_FILE = ".arena/keys.json"
_decoder = msgspec.json.Decoder(_KeyFile)
_encoder = msgspec.json.Encoder()


def default_keys_path() -> Path:
    """Where the gateway and ``arena keys`` look when not told (``--keys-file``, validator.toml)."""
    return Path(DEFAULT_KEYS_FILE).resolve()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def load_keys(path: Path) -> list[ApiKey]:
    """Every key in the file (revoked ones included); an absent file holds no keys."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        return _decoder.decode(data).keys
    except msgspec.DecodeError as exc:
        raise KeyStoreError(
            f"keys file {path} is not valid: {exc}; restore it or remove it"
        ) from exc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[list[ApiKey]]:
    """Read-modify-write under an exclusive lock; the new list replaces the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        keys = load_keys(path)
        yield keys
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(_encoder.encode(_KeyFile(keys=keys)))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def create_key(path: Path, name: str, rate_per_s: float, burst: int) -> tuple[ApiKey, str]:
    """Add a key; returns it and its secret, which is not stored anywhere."""
    if rate_per_s <= 0 or burst < 1:
        raise KeyStoreError(f"rate must be > 0 and burst >= 1, got rate={rate_per_s} burst={burst}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        key_id="key_" + secrets.token_hex(6),
        name=name,
        key_hash=hash_secret(secret),
        created_at=time.time(),
        rate_per_s=rate_per_s,
        burst=burst,
    )
    with _locked(path) as keys:
        keys.append(key)
    return key, secret


def revoke_key(path: Path, key_id: str) -> ApiKey:
    """Mark a key revoked (it stays in the file, so usage events keep a name to join on)."""
    with _locked(path) as keys:
        for i, key in enumerate(keys):
            if key.key_id == key_id:
                if key.active:
                    keys[i] = msgspec.structs.replace(key, revoked_at=time.time())
                return keys[i]
    raise KeyStoreError(f"no key {key_id!r} in {path}; `arena keys list` shows the key ids")


class KeyRing:
    """The gateway's view of the keys file, re-read whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, ApiKey] = {}

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            self._by_hash = {k.key_hash: k for k in load_keys(self.path) if k.active}
            self._stamp = stamp

    def lookup(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None (unknown or revoked)."""
        self._refresh()
        return self._by_hash.get(hash_secret(secret))
