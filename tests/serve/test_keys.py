"""The keys file: hashes only, revocation, and the gateway's view re-read on change."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app as arena
from serve_apps.keys import KeyRing, KeyStoreError, create_key, hash_secret, load_keys, revoke_key


def test_secret_is_never_stored(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key, secret = create_key(path, "alice", rate_per_s=2, burst=4)
    stored = path.read_text()
    assert secret.startswith("sk-arena-") and secret not in stored
    assert hash_secret(secret) in stored and key.key_id in stored
    assert path.stat().st_mode & 0o777 == 0o600


def test_ring_finds_active_keys_and_forgets_revoked_ones(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(path)
    assert ring.lookup("sk-arena-anything") is None  # no file yet
    alice, alice_secret = create_key(path, "alice", rate_per_s=2, burst=4)
    bob, bob_secret = create_key(path, "bob", rate_per_s=1, burst=1)
    assert ring.lookup(alice_secret) == alice
    assert ring.lookup(bob_secret) == bob
    assert ring.lookup(alice_secret + "x") is None

    revoked = revoke_key(path, alice.key_id)
    assert revoked.revoked_at is not None
    assert ring.lookup(alice_secret) is None
    assert ring.lookup(bob_secret) == bob
    assert [k.key_id for k in load_keys(path)] == [alice.key_id, bob.key_id]


def test_bad_inputs_say_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    with pytest.raises(KeyStoreError, match="arena keys list"):
        revoke_key(path, "key_missing")
    with pytest.raises(KeyStoreError, match="rate must be > 0"):
        create_key(path, "x", rate_per_s=0, burst=1)
    path.write_text("{not json")
    with pytest.raises(KeyStoreError, match="not valid"):
        load_keys(path)


def test_cli_create_list_revoke(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    runner = CliRunner()
    created = runner.invoke(
        arena, ["keys", "create", "carol", "--rate", "3", "--keys-file", str(path)]
    )
    assert created.exit_code == 0, created.output
    key_id, secret = created.output.split()
    ring = KeyRing(path)
    assert ring.lookup(secret).key_id == key_id

    listed = runner.invoke(arena, ["keys", "list", "--keys-file", str(path)])
    assert key_id in listed.output and "active" in listed.output and secret not in listed.output

    revoked = runner.invoke(arena, ["keys", "revoke", key_id, "--keys-file", str(path)])
    assert revoked.exit_code == 0, revoked.output
    assert ring.lookup(secret) is None
    assert "revoked" in runner.invoke(arena, ["keys", "list", "--keys-file", str(path)]).output

    missing = runner.invoke(arena, ["keys", "revoke", "key_nope", "--keys-file", str(path)])
    assert missing.exit_code == 1
