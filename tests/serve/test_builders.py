"""`serve run` builders: string arguments become typed configs; mistakes are refused early."""

from __future__ import annotations

import pytest

from serve_apps import gateway, miner
from serve_apps.gateway import GatewayConfig
from serve_apps.keys import default_keys_path


def _bound_config(app: object) -> object:
    (config,) = app._bound_deployment.init_args  # what the replica's constructor receives
    return config


def test_gateway_builder_converts_strings_and_fills_defaults() -> None:
    app = gateway.build_app({"reference_endpoint": "http://127.0.0.1:8000", "port": "9100"})
    config = _bound_config(app)
    assert isinstance(config, GatewayConfig)
    assert (config.port, config.host, config.served_model_name) == (9100, "127.0.0.1", "arena-tiny")
    assert config.keys_file == str(default_keys_path())


@pytest.mark.parametrize(
    "args", [{}, {"reference_endpoint": "http://x", "port": "eighty"}, {"reference_endpoint": 1}]
)
def test_gateway_builder_refuses_bad_arguments(args: dict) -> None:
    with pytest.raises(ValueError, match="bad gateway arguments"):
        gateway.build_app(args)


def test_miner_builder_follows_the_profile() -> None:
    config = _bound_config(miner.build_app({"profile": "sn-h200", "port": "8001"}))
    assert (config.tensor_parallel_size, config.num_gpus, config.port) == (4, 4, 8001)
    assert "--enforce-eager" not in config.engine_flags
    local = _bound_config(miner.build_app({"model": "/models"}))
    assert (local.tensor_parallel_size, local.model) == (1, "/models")
    assert miner.vllm_cli_args(local)[:4] == [
        "--model",
        "/models",
        "--served-model-name",
        "arena-tiny",
    ]
    with pytest.raises(ValueError, match="unknown miner arguments"):
        miner.build_app({"gpus": "8"})
