"""`arena miner commit` and `arena chain status` against the session's chain."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chain.client import ChainClient
from chain.commitment import read_commitment
from chain.localnet import TAO, LocalSubnet, dev_miner
from chain.wallet import WalletError, load_wallet, write_hotkey
from cli.main import app

pytestmark = pytest.mark.chain

DIGEST = "sha256:" + "c1" * 32
runner = CliRunner()


def test_commit_from_a_wallet_reports_its_block_and_status_shows_it(
    local_subnet: LocalSubnet, chain_client: ChainClient, tmp_path
) -> None:
    mnemonic = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
    wallet_root = tmp_path / "wallets"
    coldkey = local_subnet.miner_coldkey
    write_hotkey("cli", "m", mnemonic, coldkey.ss58_address, wallet_root)
    wallet = load_wallet("cli", "m", wallet_root)
    assert mnemonic not in repr(wallet)
    args = ["miner", "commit", "--image", "127.0.0.1:5000/arena/cli:v1", "--digest", DIGEST]
    args += ["--netuid", str(local_subnet.netuid), "--network", local_subnet.url]
    args += ["--wallet-name", "cli", "--wallet-hotkey", "m", "--wallet-path", str(wallet_root)]

    unregistered = runner.invoke(app, args)
    assert unregistered.exit_code == 1
    assert "is not registered on netuid" in " ".join(unregistered.output.split())

    hotkey = wallet.hotkey.ss58_address
    for module, function, params in [
        ("Balances", "transfer_keep_alive", {"dest": hotkey, "value": 10 * TAO}),
        ("SubtensorModule", "burned_register", {"netuid": local_subnet.netuid, "hotkey": hotkey}),
    ]:
        chain_client.submit(chain_client.compose_call(module, function, params), coldkey)

    bad = runner.invoke(app, [*args[:5], "sha256:abc", *args[6:]])
    assert bad.exit_code != 0
    assert "64 lowercase hex" in " ".join(bad.output.split())

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    stored = read_commitment(chain_client, local_subnet.netuid, hotkey)
    assert stored is not None
    assert f"in block {stored.block}" in " ".join(result.output.split())

    status = runner.invoke(
        app,
        ["chain", "status", "--netuid", str(local_subnet.netuid), "--network", local_subnet.url],
    )
    assert status.exit_code == 0, status.output
    flat = status.output.replace("\n", "").replace(" ", "").replace("│", "")
    assert "127.0.0.1:5000/arena/cli:v1" in flat


def test_wallet_errors_name_the_file_and_hide_the_secret(tmp_path) -> None:
    with pytest.raises(WalletError, match="not found"):
        load_wallet("absent", "h", tmp_path)
    hotkeys = tmp_path / "w" / "hotkeys"
    hotkeys.mkdir(parents=True)
    (hotkeys / "h").write_text("secret words that are not json")
    with pytest.raises(WalletError) as info:
        load_wallet("w", "h", tmp_path)
    assert str(hotkeys / "h") in str(info.value)
    assert "secret words" not in str(info.value)
    (hotkeys / "h").write_text(json.dumps({"ss58Address": dev_miner(0).ss58_address}))
    with pytest.raises(WalletError, match="neither secretPhrase nor secretSeed"):
        load_wallet("w", "h", tmp_path)
