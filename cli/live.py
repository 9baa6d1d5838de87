"""`arena live ...`: live-endpoint mode (miners serve their own endpoints).

``arena live miner`` serves a task; ``arena live serve-axon`` publishes its address on chain
(the lead also exposes it as ``arena miner serve-axon``); ``arena live validator`` challenges
miners, forwards organic requests and sets weights; ``arena live scores`` reads the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.options import (
    DEFAULT_WALLET,
    DEFAULT_WALLET_PATH,
    HotkeyUri,
    KeysFile,
    Netuid,
    Network,
    WalletHotkey,
    WalletName,
    WalletPath,
    load_hotkey,
)

app = typer.Typer(
    help="Live-endpoint mode: miners serve their own endpoints.", no_args_is_help=True
)

Task = Annotated[str, typer.Option(help="live task to serve")]


def _client(network: str):
    from chain.client import ChainClient, resolve_network

    try:
        return ChainClient(resolve_network(network))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def miner(
    netuid: Netuid,
    network: Network = "local",
    wallet_name: WalletName = DEFAULT_WALLET,
    wallet_hotkey: WalletHotkey = DEFAULT_WALLET,
    wallet_path: WalletPath = DEFAULT_WALLET_PATH,
    hotkey_uri: HotkeyUri = "",
    task: Task = "arith",
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8091,
    behaviour: Annotated[
        str, typer.Option(help="correct, wrong or slow (example miners for testing validators)")
    ] = "correct",
    slow_delay_s: Annotated[float, typer.Option(help="delay of the slow behaviour")] = 0.5,
    min_stake: Annotated[float, typer.Option(help="alpha stake a caller needs")] = 0.0,
    capacity_rps: Annotated[
        float, typer.Option(help="requests/s served in total, shared by stake")
    ] = 50.0,
    refresh_s: Annotated[float, typer.Option(help="seconds between metagraph refreshes")] = 60.0,
) -> None:
    """Serve a live task from this machine, answering signed validator requests."""
    from live.auth import Authenticator, AuthPolicy
    from live.callers import RefreshingCallers
    from live.chain_link import caller_stakes
    from live.miner import MinerApp, MinerConfig, MinerServer, bind_socket
    from live.tasks import get_task

    if behaviour not in ("correct", "wrong", "slow"):
        raise typer.BadParameter(f"behaviour must be correct, wrong or slow, got {behaviour!r}")
    keypair = load_hotkey(wallet_name, wallet_hotkey, wallet_path, hotkey_uri)
    client = _client(network)
    callers = RefreshingCallers(lambda: caller_stakes(client, netuid), refresh_s)
    callers.start()
    auth = Authenticator(
        keypair.ss58_address,
        AuthPolicy(min_stake=min_stake, capacity_rps=capacity_rps),
        callers,
    )
    config = MinerConfig(behaviour=behaviour, slow_delay_s=slow_delay_s)  # type: ignore[arg-type]
    server = MinerServer(MinerApp(get_task(task), auth, config), bind_socket(host, port))
    typer.echo(f"miner {keypair.ss58_address} serving {task} on {host}:{server.port}")
    try:
        server.run()
    finally:
        callers.stop()
        client.close()


@app.command("serve-axon")
def serve_axon(
    netuid: Netuid,
    ip: Annotated[str, typer.Option(help="public IP validators reach this miner at")],
    port: Annotated[int, typer.Option(help="public port")],
    network: Network = "local",
    wallet_name: WalletName = DEFAULT_WALLET,
    wallet_hotkey: WalletHotkey = DEFAULT_WALLET,
    wallet_path: WalletPath = DEFAULT_WALLET_PATH,
    hotkey_uri: HotkeyUri = "",
) -> None:
    """Publish this miner's address on chain so validators can find it."""
    from chain.axon import serve_axon as publish
    from chain.client import ChainError

    keypair = load_hotkey(wallet_name, wallet_hotkey, wallet_path, hotkey_uri)
    with _client(network) as client:
        try:
            result = publish(client, keypair, netuid, ip, port)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        except ChainError as exc:
            typer.echo(f"serve_axon failed: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        f"axon {ip}:{port} served for {keypair.ss58_address} on netuid {netuid} "
        f"(block {result.block}, extrinsic {result.extrinsic_hash})"
    )


@app.command()
def validator(
    netuid: Netuid,
    log: Annotated[Path, typer.Option(help="event log file (DuckDB), held by this process")],
    network: Network = "local",
    wallet_name: WalletName = DEFAULT_WALLET,
    wallet_hotkey: WalletHotkey = DEFAULT_WALLET,
    wallet_path: WalletPath = DEFAULT_WALLET_PATH,
    hotkey_uri: HotkeyUri = "",
    task: Task = "arith",
    round_interval_s: Annotated[float, typer.Option(help="seconds between rounds")] = 12.0,
    weights_every_rounds: Annotated[int, typer.Option(help="rounds between weight sets")] = 25,
    sample_size: Annotated[int, typer.Option(help="miners challenged per round")] = 16,
    timeout_s: Annotated[float, typer.Option(help="per-request timeout")] = 2.0,
    organic_port: Annotated[
        int, typer.Option(help="serve organic requests on this port (0: off)")
    ] = 0,
    keys_file: KeysFile = None,
) -> None:
    """Challenge miners' endpoints on a schedule, forward organic requests, set weights."""
    from events.client import LocalLogClient
    from events.log import EventLog
    from live.chain_link import ChainLink
    from live.endpoints import DirectResolver
    from live.scoring import ScoringRule
    from live.tasks import get_task
    from live.validator import LiveValidator, LiveValidatorConfig, restore_state

    keypair = load_hotkey(wallet_name, wallet_hotkey, wallet_path, hotkey_uri)
    config = LiveValidatorConfig(
        netuid=netuid,
        sample_size=sample_size,
        scoring=ScoringRule(timeout_s=timeout_s),
    )
    with _client(network) as client, EventLog(log) as event_log:
        sink = LocalLogClient(event_log)
        live = LiveValidator(
            config,
            keypair,
            get_task(task),
            ChainLink(client, netuid, keypair),
            sink,
            DirectResolver(),
            state=restore_state(sink, keypair.ss58_address),
        )
        asyncio.run(
            _run_validator(live, round_interval_s, weights_every_rounds, organic_port, keys_file)
        )


async def _run_validator(
    live, round_interval_s: float, weights_every_rounds: int, organic_port: int, keys_file
) -> None:
    import uvicorn

    from live.organic import create_organic_app
    from serve_apps.keys import default_keys_path

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(
            live.run(
                stop, round_interval_s=round_interval_s, weights_every_rounds=weights_every_rounds
            )
        )
    ]
    if organic_port:
        app = create_organic_app(live, keys_file or default_keys_path())
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=organic_port, log_level="warning")
        )
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        tasks.append(asyncio.create_task(server.serve()))
        typer.echo(
            f"organic requests: POST http://127.0.0.1:{organic_port}/v1/live/{live.task.name}"
        )
    typer.echo(f"live validator {live.hotkey} running; Ctrl-C stops it")
    await stop.wait()
    if organic_port:
        server.should_exit = True
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await live.aclose()


@app.command()
def scores(
    log: Annotated[Path, typer.Option(help="event log file (DuckDB)")],
    netuid: Annotated[int | None, typer.Option(help="only this subnet")] = None,
) -> None:
    """Each miner's latest average, accuracy and latency, per validator."""
    from events.log import EventLog
    from live.views import with_views

    query = with_views(
        """
        SELECT validator, uid, hotkey, count(*) AS requests, avg(CAST(correct AS INTEGER)),
               median(latency_ms), arg_max(ema, seq)
        FROM live_scores WHERE $netuid IS NULL OR netuid = $netuid
        GROUP BY validator, uid, hotkey ORDER BY validator, uid
        """
    )
    with EventLog(log) as event_log:
        _, rows = event_log.sql(query, {"netuid": netuid})
    table = Table("validator", "uid", "hotkey", "requests", "accuracy", "p50 ms", "ema")
    for validator_hk, uid, hk, n, accuracy, p50, ema in rows:
        table.add_row(
            validator_hk[:10],
            str(uid),
            hk[:10],
            str(n),
            f"{accuracy:.2f}",
            "-" if p50 is None else f"{p50:.1f}",
            f"{ema:.3f}",
        )
    Console().print(table)
