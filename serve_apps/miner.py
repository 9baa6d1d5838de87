"""The reference miner: vLLM's async engine behind a Ray Serve deployment.

The replica builds vLLM's own OpenAI app (``OpenAIServingChat`` and friends) around an ``AsyncLLM``
and serves it on its own listener, so its ``/v1/chat/completions`` (streaming, logprobs,
``return_tokens_as_token_ids``), ``/v1/models`` and ``/health`` behave exactly like the baseline
vLLM server. Miners start from here; the reference miner image runs the same entrypoint::

    python -m serve_apps.miner --model /models --host 0.0.0.0 --port 8000 [--profile sn-h200]

Anything after ``--`` is passed to vLLM as engine flags (e.g. ``-- --max-num-seqs 64``).

Like every module here that defines Serve deployments, this one does without
``from __future__ import annotations`` (it breaks Serve ingress apps; DESIGN.md section 8).
"""

import argparse
import os
import signal
import sys
import threading
from typing import Any

import msgspec
from ray import serve

from harness.profile import Profile, get_profile
from serve_apps.listener import Listener

__all__ = [
    "MinerConfig",
    "ReferenceMiner",
    "build_app",
    "config_from_argv",
    "main",
    "miner_config",
    "vllm_cli_args",
]


class MinerConfig(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = 8000
    tensor_parallel_size: int = 1
    num_gpus: float = 0
    engine_flags: tuple[str, ...] = ()


def miner_config(
    profile: Profile,
    *,
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    extra_flags: tuple[str, ...] = (),
) -> MinerConfig:
    """The reference miner for a profile: tensor parallel over the profile's GPUs (none locally)."""
    return MinerConfig(
        model=model or profile.model_dir,
        served_model_name=profile.served_model_name,
        host=host,
        port=port,
        tensor_parallel_size=max(1, profile.gpus_per_container),
        num_gpus=profile.gpus_per_container,
        engine_flags=profile.engine_flags + extra_flags,
    )


def vllm_cli_args(config: MinerConfig) -> list[str]:
    """The vLLM server flags this miner runs with, as on ``vllm serve``'s command line."""
    return [
        "--model",
        config.model,
        "--served-model-name",
        config.served_model_name,
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--tensor-parallel-size",
        str(config.tensor_parallel_size),
        "--disable-uvicorn-access-log",
        *config.engine_flags,
    ]


@serve.deployment(
    num_replicas=1,
    max_ongoing_requests=1024,
    health_check_period_s=10,
    health_check_timeout_s=30,
    ray_actor_options={"num_cpus": 0},
)
class ReferenceMiner:
    """One vLLM engine and its OpenAI app, listening on ``config.host:config.port``."""

    async def __init__(self, config: MinerConfig) -> None:
        # vLLM is imported here, in the replica, so importing this module stays cheap.
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.entrypoints.launchers.api_server.entry import build_async_engine_client
        from vllm.entrypoints.launchers.app import build_app as build_vllm_app
        from vllm.entrypoints.launchers.cli_args import (
            make_arg_parser,
            validate_parsed_serve_args,
        )
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        args = make_arg_parser(FlexibleArgumentParser()).parse_args(vllm_cli_args(config))
        validate_parsed_serve_args(args)
        self._engine_context = build_async_engine_client(args)
        self._engine = await self._engine_context.__aenter__()
        tasks = await self._engine.get_supported_tasks()
        app = build_vllm_app(args, tasks, self._engine.model_config)
        await init_app_state(self._engine, app.state, args, tasks)
        self._listener = Listener(app, config.host, config.port)
        await self._listener.start()

    async def check_health(self) -> None:
        self._listener.check()
        await self._engine.check_health()

    async def __del__(self) -> None:
        # Also runs after a failed __init__, when only part of this exists.
        if hasattr(self, "_listener"):
            await self._listener.stop()
        if hasattr(self, "_engine"):
            await self._engine_context.__aexit__(None, None, None)


def build_app(args: dict[str, str]) -> serve.Application:
    """Serve builder: ``serve run serve_apps.miner:build_app profile=local port=8000 model=DIR``."""
    unknown = set(args) - {"profile", "model", "host", "port"}
    if unknown:
        raise ValueError(
            f"unknown miner arguments {sorted(unknown)}; use profile, model, host, port"
        )
    config = miner_config(
        get_profile(args.get("profile", "local")),
        model=args.get("model"),
        host=args.get("host", "127.0.0.1"),
        port=int(args.get("port", 8000)),
    )
    return ReferenceMiner.options(
        ray_actor_options={"num_cpus": 0, "num_gpus": config.num_gpus}
    ).bind(config)


def _start_ray(ray: Any, attempts: int = 3) -> None:
    """A private Ray; retried because its raylet must register within a fixed 30 s, which a
    container on a busy host can miss."""
    for attempt in range(1, attempts + 1):
        try:
            # The miner passes no objects through Ray: a small store fits a container's /dev/shm.
            ray.init(
                address="local",
                include_dashboard=False,
                object_store_memory=128 * 1024**2,
                _node_ip_address="127.0.0.1",
            )
            return
        except Exception as exc:
            ray.shutdown()
            if attempt == attempts:
                raise RuntimeError(f"Ray did not start in {attempts} attempts: {exc}") from exc
            print(f"Ray did not start ({exc}); retrying", file=sys.stderr)


def config_from_argv(argv: list[str]) -> MinerConfig:
    """The config that a miner command line (see the module docstring) asks for."""
    own, extra = argv, []
    if "--" in argv:
        own, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m serve_apps.miner", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", help="model directory (default: the profile's)")
    parser.add_argument("--profile", default="local")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    opts = parser.parse_args(own)
    return miner_config(
        get_profile(opts.profile),
        model=opts.model,
        host=opts.host,
        port=opts.port,
        extra_flags=tuple(extra),
    )


def main(argv: list[str] | None = None) -> None:
    """Start a private Ray on this machine, run the miner, and stop both on SIGTERM or SIGINT."""
    config = config_from_argv(sys.argv[1:] if argv is None else argv)

    # A private, loopback-only Ray: no auth needed, nothing listening beyond this machine.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # vLLM's workers talk over this address; the whole engine lives on this machine.
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    import ray

    _start_ray(ray)

    def stop(signum: int, frame: object) -> None:
        # Raised in the main thread wherever it is (starting up or serving), so `finally` runs.
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        serve.start(proxy_location="Disabled")
        serve.run(
            ReferenceMiner.options(
                ray_actor_options={"num_cpus": 0, "num_gpus": config.num_gpus}
            ).bind(config),
            name="miner",
            route_prefix=None,
        )
        print(f"reference miner serving {config.served_model_name} on {config.host}:{config.port}")
        sys.stdout.flush()
        threading.Event().wait()
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    # Run the imported module's main, so Ray pickles its classes by reference, not as __main__'s.
    from serve_apps.miner import main as miner_main

    miner_main()
