"""Gateway overhead: added time-to-first-token and max sustained requests/s, one run, four paths.

    python -m bench.gateway [--tokens 16] [--ttft-requests 300] [--concurrency 32] [--duration-s 8]

The upstream is ``serve_apps.synthetic`` (fixed tokens, no model), so what is measured is the hop:

* ``direct``: the client talks to the synthetic server itself (the reference).
* ``gateway``: ``serve_apps.gateway`` as deployed, a Serve replica with its own listener.
* ``gateway via Serve proxy``: the same app behind Ray Serve's HTTP proxy, access logs off.
* ``litellm``: LiteLLM's proxy forwarding to the same server; it runs from its own virtualenv
  (``--litellm``, default ``.cache/litellm-venv``: ``pip install 'litellm[proxy]'`` there).

TTFT is from sending the request to the first content token, one request at a time, the paths
taken in turn so that load from elsewhere on the machine hits them alike; throughput is completed
streaming requests per second with ``--concurrency`` clients in a closed loop (best of two passes).
Writes ``bench/results/gateway.json``.
"""

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.console import Console
from rich.table import Table

__all__ = [
    "FIRST_TOKEN",
    "MODEL",
    "REPO",
    "PathResult",
    "best_rates",
    "main",
    "path_results",
    "results_table",
    "start_synthetic",
    "ttft_samples",
    "wait_healthy",
]


REPO = Path(__file__).resolve().parent.parent
MODEL = "arena-tiny"
FIRST_TOKEN = b'"content":"t0 '


class PathResult(msgspec.Struct):
    name: str
    ttft_p50_ms: float
    ttft_p99_ms: float
    added_ttft_p50_ms: float
    added_ttft_p99_ms: float
    requests_per_s: float
    errors: int


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_synthetic(port: int, tokens: int) -> subprocess.Popen:
    """``serve_apps.synthetic`` on 127.0.0.1:``port``, in a process group of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "serve_apps.synthetic", "--port", str(port)]
        + ["--tokens", str(tokens)],
        cwd=REPO,
        start_new_session=True,
    )


def wait_healthy(
    url: str, timeout_s: float = 120.0, process: subprocess.Popen | None = None
) -> None:
    """Until ``url`` answers below 500; raise if ``process`` exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {timeout_s:.0f} s")


def _body(stream: bool) -> bytes:
    messages = [{"role": "user", "content": "hello"}]
    return msgspec.json.encode({"model": MODEL, "messages": messages, "stream": stream})


async def _one_stream(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    """Seconds to the first content token; reads the stream to its end."""
    started = time.perf_counter()
    first = 0.0
    seen = b""
    async with client.stream("POST", url, content=_body(True), headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
        async for chunk in response.aiter_raw():
            if not first:
                seen += chunk
                if FIRST_TOKEN in seen:
                    first = time.perf_counter() - started
    if not first:
        raise RuntimeError("the stream ended without the first token")
    return first


async def ttft_samples(
    paths: list[tuple[str, str, dict[str, str]]], requests: int
) -> list[list[float]]:
    """TTFT samples per path, taken round-robin so a load spike hits every path alike."""
    clients = [httpx.AsyncClient(timeout=30) for _ in paths]
    try:
        targets = [
            (client, base + "/v1/chat/completions", headers)
            for client, (_, base, headers) in zip(clients, paths, strict=True)
        ]
        for _ in range(20):  # warm connections and caches
            for client, url, headers in targets:
                await _one_stream(client, url, headers)
        samples: list[list[float]] = [[] for _ in paths]
        for _ in range(requests):
            for i, (client, url, headers) in enumerate(targets):
                samples[i].append(await _one_stream(client, url, headers))
        return samples
    finally:
        for client in clients:
            await client.aclose()


async def _throughput(
    url: str, headers: dict[str, str], concurrency: int, duration_s: float
) -> tuple[float, int]:
    """Completed streams per second and errors, ``concurrency`` clients in a closed loop."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        done = errors = 0
        stop_at = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                try:
                    await _one_stream(client, url, headers)
                    done += 1
                except (httpx.HTTPError, RuntimeError):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started), errors


def best_rates(
    paths: list[tuple[str, str, dict[str, str]]],
    concurrency: int,
    duration_s: float,
    console: Console,
) -> dict[str, tuple[float, int]]:
    """Two throughput passes in opposite orders; each path keeps its better one."""
    rates: dict[str, tuple[float, int]] = {}
    for order in (paths, paths[::-1]):
        for name, base, headers in order:
            console.print(f"measuring throughput of {name} ...")
            url = base + "/v1/chat/completions"
            rate = asyncio.run(_throughput(url, headers, concurrency, duration_s))
            rates[name] = max(rates.get(name, rate), rate)
    return rates


def path_results(
    paths: list[tuple[str, str, dict[str, str]]],
    ttft: list[list[float]],
    rates: dict[str, tuple[float, int]],
) -> list[PathResult]:
    """Each path's TTFT, that added to the first path's (the direct one), and its rate."""
    direct50, direct99 = statistics.median(ttft[0]), _percentile(ttft[0], 99)
    results = []
    for (name, _, _), samples in zip(paths, ttft, strict=True):
        p50, p99 = statistics.median(samples), _percentile(samples, 99)
        rps, errors = rates[name]
        results.append(
            PathResult(
                name,
                ttft_p50_ms=p50 * 1e3,
                ttft_p99_ms=p99 * 1e3,
                added_ttft_p50_ms=(p50 - direct50) * 1e3,
                added_ttft_p99_ms=(p99 - direct99) * 1e3,
                requests_per_s=rps,
                errors=errors,
            )
        )
    return results


def results_table(title: str, results: list[PathResult], concurrency: int) -> Table:
    table = Table(title=title)
    for column in ("path", "TTFT p50 ms", "TTFT p99 ms", "added p50 ms", "added p99 ms"):
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_column(f"req/s @ {concurrency}", justify="right")
    table.add_column("errors", justify="right")
    for r in results:
        table.add_row(
            r.name,
            f"{r.ttft_p50_ms:.2f}",
            f"{r.ttft_p99_ms:.2f}",
            f"{r.added_ttft_p50_ms:+.2f}",
            f"{r.added_ttft_p99_ms:+.2f}",
            f"{r.requests_per_s:.0f}",
            str(r.errors),
        )
    return table


def _percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (1-99) of ``values``."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _start_litellm(
    python: Path, upstream: str, port: int, workdir: Path, master_key: str
) -> subprocess.Popen:
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: unused\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
    )
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_MASTER_KEY": master_key,
    }
    return subprocess.Popen(
        [str(python.parent / "litellm"), "--config", str(config)]
        + ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "litellm.log", "w"),  # noqa: SIM115 - lives as long as the process
        start_new_session=True,
    )


def _start_gateways(
    upstream: str, keys_file: Path, port: int, proxy_port: int, ray_dir: Path
) -> None:
    """Both gateway paths in one private Ray: the deployed one and the one behind Serve's proxy."""
    for name, value in {
        "RAY_AUTH_MODE": "disabled",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }.items():
        os.environ.setdefault(name, value)
    import ray
    from ray import serve

    from actors.placement import head_node_resources
    from serve_apps.gateway import GatewayConfig, create_app, serve_gateway

    ray.init(
        address="local",
        resources=head_node_resources(),
        include_dashboard=False,
        _temp_dir=str(ray_dir),
        log_to_driver=False,
    )
    serve.start(
        http_options={"host": "127.0.0.1", "port": proxy_port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    config = GatewayConfig(
        reference_endpoint=upstream, keys_file=str(keys_file), port=port, event_log=False
    )
    serve.run(serve_gateway(config), name="gateway", route_prefix=None)

    @serve.deployment(max_ongoing_requests=1024, ray_actor_options={"num_cpus": 0})
    @serve.ingress()
    class ProxiedGateway:
        def __init__(self, config: GatewayConfig) -> None:
            self._config = config

        def __serve_build_asgi_app__(self) -> Any:
            return create_app(self._config)

    serve.run(ProxiedGateway.bind(config), name="proxied", route_prefix="/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--ttft-requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=8.0)
    parser.add_argument("--litellm", type=Path, default=REPO / ".cache/litellm-venv/bin/python")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/gateway.json")
    args = parser.parse_args()

    from serve_apps.keys import create_key

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    _, secret = create_key(workdir / "keys.json", "bench", rate_per_s=1e9, burst=1_000_000_000)
    backend_port, gateway_port, proxy_port, litellm_port = (_free_port() for _ in range(4))
    upstream = f"http://127.0.0.1:{backend_port}"
    processes = [start_synthetic(backend_port, args.tokens)]
    console = Console(width=120)
    try:
        wait_healthy(upstream + "/health")
        auth = {"authorization": f"Bearer {secret}"}
        paths: list[tuple[str, str, dict[str, str]]] = [
            ("direct", upstream, {}),
            ("gateway", f"http://127.0.0.1:{gateway_port}", auth),
            ("gateway via Serve proxy", f"http://127.0.0.1:{proxy_port}", auth),
        ]
        if args.litellm.exists():
            master_key = "sk-bench-" + secrets.token_hex(16)
            process = _start_litellm(args.litellm, upstream, litellm_port, workdir, master_key)
            processes.append(process)
            litellm = f"http://127.0.0.1:{litellm_port}"
            try:
                wait_healthy(litellm + "/health/liveliness", 300, process)
            except RuntimeError as exc:
                log = (workdir / "litellm.log").read_text()[-2000:]
                raise RuntimeError(f"{exc}; its log ends with:\n{log}") from None
            paths.append(("litellm", litellm, {"authorization": f"Bearer {master_key}"}))
        else:
            console.print(f"[yellow]no LiteLLM at {args.litellm}: skipping it[/]")
        _start_gateways(upstream, workdir / "keys.json", gateway_port, proxy_port, workdir / "ray")
        for _, base, _ in paths[:3]:
            wait_healthy(base + "/health", timeout_s=300)

        console.print(f"measuring TTFT on {', '.join(name for name, _, _ in paths)} ...")
        ttft = asyncio.run(ttft_samples(paths, args.ttft_requests))
        rates = best_rates(paths, args.concurrency, args.duration_s, console)
        results = path_results(paths, ttft, rates)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
            process.wait(timeout=30)
        if "ray" in sys.modules:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)

    title = f"gateway overhead ({args.tokens} tokens/stream, synthetic upstream)"
    table = results_table(title, results, args.concurrency)
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "tokens": args.tokens,
        "ttft_requests": args.ttft_requests,
        "concurrency": args.concurrency,
        "duration_s": args.duration_s,
        "cpus": os.cpu_count(),
        "results": results,
    }
    args.out.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
