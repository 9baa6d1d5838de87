"""validator.toml plus flags, resolved once: unknown fields refused, flags on top, the profile and
the gateway resolved for the actors. Plain files, no Ray or chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from actors.validator_config import SettingsError, load_settings, resolve
from cli.main import app
from harness.profile import get_profile, repo_root

EXAMPLE = repo_root() / "validator.example.toml"
PINNED = "registry.example/vllm@sha256:" + "ab" * 32


def test_the_shipped_example_loads_and_resolves() -> None:
    settings = load_settings(EXAMPLE, {"evaluation.baseline_image": PINNED})
    config = resolve(settings)
    assert (config.netuid, config.chain_url) == (0, "wss://entrypoint-finney.opentensor.ai:443")
    assert config.profile.name == "sn-h200" and config.profile.baseline_image == PINNED
    assert (config.wallet_name, config.wallet_hotkey) == ("validator", "default")
    assert config.gateway is not None and config.gateway.port == 8080
    # The gateway serves the profile's model, whatever the table says.
    assert config.gateway.served_model_name == get_profile("sn-h200").served_model_name
    assert Path(config.gateway.keys_file).is_absolute() and Path(config.log_path).is_absolute()


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text('[chain]\nnetuid = 3\nnetwork = "test"\n[evaluation]\nprofile = "sn-h200"\n')
    overrides = {"chain.netuid": 7, "evaluation.profile": "local", "chain.network": None}
    config = resolve(load_settings(path, overrides))
    assert (config.netuid, config.profile.name) == (7, "local")
    assert config.chain_url.startswith("wss://test")  # a flag not given keeps the file's value
    assert config.gateway is None  # no [gateway] table, no gateway


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[chain]\nnetuid = 1\nnetwrok = 'local'\n", ["netwrok"]),
        ("[chain]\nnetuid = 1\n[rounds]\nno_king = 'burn'\n", ["no_king"]),
        ("[chain]\nnetuid = 'one'\n", ["netuid", "int"]),
        ("[evaluation]\nprofile = 'local'\n", ["chain"]),
        ("[chain]\nnetuid = 1\n[gateway]\nport = 8080\n", ["reference_endpoint"]),
        ("[chain\nnetuid = 1\n", ["not TOML"]),
    ],
)
def test_a_wrong_setting_is_named(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "v.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_settings(path, {})
    for word in words:
        assert word in str(caught.value)


def test_an_unknown_profile_or_network_is_refused_when_resolved(tmp_path: Path) -> None:
    for overrides, word in (
        ({"evaluation.profile": "sn-b200"}, "unknown profile"),
        ({"chain.network": "mainnet"}, "unknown network"),
    ):
        settings = load_settings(None, {"chain.netuid": 1, **overrides})
        with pytest.raises(SettingsError, match=word):
            resolve(settings)


def test_validator_start_refuses_a_bad_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text("[chain]\nnetuid = 1\ncolour = 'blue'\n")
    result = CliRunner().invoke(app, ["validator", "start", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "colour" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["validator", "start", "--config", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "no settings file" in missing.output
