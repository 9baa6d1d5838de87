"""`arena validator start|stop|status`: the validator on a running Ray cluster.

``start`` reads ``validator.toml`` (README: Running a validator), puts any flags on top, resolves
it once and ships the result to the actors: the event log, chain watcher, scheduler, crown keeper,
the king's server and, with a ``[gateway]`` table, the gateway. ``status`` and ``stop`` cover
them all.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from actors.validator_config import SettingsError, load_settings, resolve
from cli.options import (
    DEFAULT_LOG_PATH,
    BaselineImage,
    HotkeyUri,
    Netuid,
    Network,
    ProfileName,
    RayAddress,
    WalletHotkey,
    WalletName,
    WalletPath,
    load_hotkey,
)
from cli.progress import RUNNING_INPUTS, describe_running
from events.client import BaseLogClient, LocalLogClient
from events.log import EventLog, type_name
from events.types import EvalFinished, Event, WeightsSet
from rules.crown_policy import INPUT_TYPES as CROWN_INPUTS
from rules.crown_policy import CrownState
from rules.queue_policy import INPUT_TYPES as QUEUE_INPUTS
from rules.queue_policy import QueueState

app = typer.Typer(help="validator commands", no_args_is_help=True)
console = Console()

RECENT_EVALS = 10
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="validator.toml; flags given here override its fields"),
]


def _connect(address: str) -> None:
    import ray

    from actors.placement import head_start_command
    from actors.ray_auth import AUTH_MODE_VAR, use_cluster_auth

    mode = use_cluster_auth()
    try:
        ray.init(address=address, namespace="arena", logging_level="ERROR")
    except ConnectionError as exc:
        raise typer.BadParameter(
            f"no Ray cluster at {address!r} with {AUTH_MODE_VAR}={mode} ({exc}); start one with "
            f"`{head_start_command()}` or `ray up cluster.yaml`, or pass --ray-address; for a "
            f"cluster without token auth set {AUTH_MODE_VAR}=disabled",
            param_hint="--ray-address",
        ) from exc


@app.command()
def start(
    config: ConfigFile = None,
    netuid: Netuid | None = None,
    network: Network | None = None,
    wallet_name: WalletName | None = None,
    wallet_hotkey: WalletHotkey | None = None,
    wallet_path: WalletPath | None = None,
    hotkey_uri: HotkeyUri | None = None,
    profile: ProfileName | None = None,
    baseline_image: BaselineImage = None,
    log: Annotated[Path | None, typer.Option("--log", help="event log file")] = None,
    gateway_port: Annotated[int | None, typer.Option(help="the gateway's port")] = None,
    no_king: Annotated[
        str | None,
        typer.Option(help="weights with no king: owner (all to the subnet owner's uid) or none"),
    ] = None,
    ray_address: RayAddress = "auto",
) -> None:
    """Start the validator's actors, the king's server and the gateway (detached, named)."""
    overrides: dict[str, Any] = {
        "chain.netuid": netuid,
        "chain.network": network,
        "wallet.name": wallet_name,
        "wallet.hotkey": wallet_hotkey,
        "wallet.path": wallet_path,
        "wallet.uri": hotkey_uri,
        "evaluation.profile": profile,
        "evaluation.baseline_image": baseline_image,
        "rounds.no_king": no_king,
        "log": None if log is None else str(log),
        "gateway.port": gateway_port,
    }
    from harness.sandbox_image import require_pinned_baseline

    try:
        settings = load_settings(config, overrides)
        resolved = resolve(settings)
        require_pinned_baseline(resolved.profile)
    except (SettingsError, ValueError) as exc:
        typer.echo(f"arena validator start: {exc}", err=True)
        raise typer.Exit(2) from None
    from chain.client import Backoff, ChainClient, ChainError

    try:
        # Asked once, before any actor starts: a chain watcher would only retry in the background.
        with ChainClient(resolved.chain_url, backoff=Backoff(attempts=1), timeout_s=10.0) as chain:
            chain.finalized_number()
    except ChainError as exc:
        typer.echo(
            f"arena validator start: {exc} Start it, or name another with --network.", err=True
        )
        raise typer.Exit(1) from None
    w = settings.wallet
    # Loaded here only to fail now: the crown keeper, which signs, loads it again.
    load_hotkey(w.name, w.hotkey, w.path, w.uri)
    from actors import supervisor
    from actors.placement import NoHeadError

    Path(resolved.log_path).parent.mkdir(parents=True, exist_ok=True)
    _connect(ray_address)
    try:
        supervisor.start(resolved, roles=supervisor.ALL_ROLES)
    except NoHeadError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ray-address") from exc
    _print_actors()
    if resolved.gateway is not None:
        g = resolved.gateway
        console.print(f"gateway: http://{g.host}:{g.port}/v1 (keys: {g.keys_file})")


@app.command()
def stop(ray_address: RayAddress = "auto") -> None:
    """Stop the gateway and the actors; the event log file keeps everything they recorded."""
    from actors import supervisor

    _connect(ray_address)
    stopped = supervisor.stop()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(
    ray_address: RayAddress = "auto",
    log: Annotated[Path, typer.Option("--log", help="event log file, if stopped")] = (
        DEFAULT_LOG_PATH
    ),
    follow: Annotated[
        bool, typer.Option(help="keep the view up to date as events arrive (Ctrl-C ends it)")
    ] = False,
) -> None:
    """Actors, the running evaluation, queue, king, last weights and recent evals."""
    from actors import supervisor

    _connect(ray_address)
    _print_actors()
    if supervisor.get("event_log") is not None:
        from actors.log_client import LogClient

        client = LogClient()
        if follow:
            _follow(client)
        else:
            render_status(client)
    elif log.exists():
        with EventLog(log) as event_log:
            render_status(LocalLogClient(event_log))
    else:
        console.print(f"no validator running and no log at {log}")


def _follow(log: BaseLogClient) -> None:
    """Redraw the status each time the log grows, until Ctrl-C."""
    after = 0
    with Live(Group(*status_tables(log)), console=console, auto_refresh=False) as live:
        try:
            while True:
                records = asyncio.run(log.wait_for(after, timeout_s=30.0))
                if records:
                    after = records[-1].seq
                live.update(Group(*status_tables(log)), refresh=True)
        except KeyboardInterrupt:
            pass


def _print_actors() -> None:
    from actors import supervisor

    table = Table(title="actors")
    for col in ("role", "name", "state", "pid", "restarts"):
        table.add_column(col)
    for s in supervisor.status():
        table.add_row(s.role, s.name, s.state, str(s.pid or ""), str(s.restarts))
    console.print(table)


def _replay(log: BaseLogClient, types: tuple[type[Event], ...]) -> list[Event]:
    return [r.event for r in log.replay(0, [type_name(t) for t in types])]


def render_status(log: BaseLogClient) -> list[Table]:
    """Fold the log the way the actors do and print what they would know."""
    tables = status_tables(log)
    for t in tables:
        console.print(t)
    return tables


def status_tables(log: BaseLogClient) -> list[Table]:
    """The status view: what the actors would know, folded from the log as they fold it."""
    queue = QueueState()
    for e in _replay(log, QUEUE_INPUTS):
        queue.apply(e)
    crown = CrownState()
    for e in _replay(log, CROWN_INPUTS):
        crown.apply(e)
    finished = [e for e in _replay(log, (EvalFinished,)) if isinstance(e, EvalFinished)]
    weights = [e for e in _replay(log, (WeightsSet,)) if isinstance(e, WeightsSet)]
    running = Table(title="now")
    running.add_column("evaluation")
    running.add_row(describe_running(_replay(log, RUNNING_INPUTS)))
    return [
        running,
        _queue_table(queue),
        _king_table(crown),
        _weights_table(weights[-1:]),
        _evals_table(finished[-RECENT_EVALS:]),
    ]


def _queue_table(queue: QueueState) -> Table:
    t = Table(title=f"queue (round {queue.last_round}{' open' if queue.round else ''})")
    for col in ("state", "hotkey", "role", "block", "digest"):
        t.add_column(col)
    for q in queue.in_flight():
        t.add_row("evaluating", q.hotkey, q.role, str(q.submitted_block), q.digest[:19])
    for s in queue.queue():
        t.add_row("queued", s.hotkey, "challenger", str(s.block), s.digest[:19])
    return t


def _king_table(crown: CrownState) -> Table:
    t = Table(title="king")
    for col in ("hotkey", "uid", "score", "since block", "digest"):
        t.add_column(col)
    k = crown.king
    if k is not None:
        t.add_row(k.hotkey, str(k.uid), f"{k.score:.4f}", str(k.since_block), k.digest[:19])
    return t


def _weights_table(weights: list[WeightsSet]) -> Table:
    t = Table(title="last weights")
    for col in ("block", "success", "uids", "weights", "extrinsic", "error"):
        t.add_column(col)
    for w in weights:
        t.add_row(
            str(w.block),
            "yes" if w.success else "no",
            str(w.uids),
            str(w.weights),
            w.extrinsic_hash[:18],
            w.error[:60],
        )
    return t


def _evals_table(finished: list[EvalFinished]) -> Table:
    t = Table(title="recent evals")
    for col in ("eval", "hotkey", "role", "verdict", "score", "noise", "reason"):
        t.add_column(col)
    for f in finished:
        t.add_row(
            f.eval_id,
            f.hotkey[:12],
            f.role,
            f.verdict,
            f"{f.score:.4f}",
            f"{f.noise:.4f}",
            f.reason[:60],
        )
    return t
