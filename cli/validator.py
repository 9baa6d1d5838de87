"""`arena validator start|stop|status`: the validator's actors on a running Ray cluster."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from actors.validator_config import ValidatorConfig
from actors.weights_policy import NO_KING_POLICIES
from events.client import BaseLogClient, LocalLogClient
from events.log import EventLog, type_name
from events.types import EvalFinished, Event, WeightsSet
from rules.crown_policy import INPUT_TYPES as CROWN_INPUTS
from rules.crown_policy import CrownState
from rules.queue_policy import INPUT_TYPES as QUEUE_INPUTS
from rules.queue_policy import QueueState

app = typer.Typer(help="validator commands", no_args_is_help=True)
console = Console()

DEFAULT_LOG = ".arena/events.duckdb"
RECENT_EVALS = 10


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
            f"`{head_start_command()}` or `ray up cluster.yaml`, or pass --address; for a "
            f"cluster without token auth set {AUTH_MODE_VAR}=disabled"
        ) from exc


@app.command()
def start(
    netuid: int = typer.Option(..., help="subnet to validate"),
    network: str = typer.Option("local", help="local, finney, test or a ws:// URL"),
    hotkey_uri: str = typer.Option("", help="dev key URI such as //Alice (local nets only)"),
    wallet_name: str = typer.Option("", help="wallet directory name"),
    wallet_hotkey: str = typer.Option("", help="hotkey name in the wallet"),
    profile: str = typer.Option("local", help="local or sn-h200"),
    baseline_image: str | None = typer.Option(
        None, help="the baseline pinned by digest (default: the profile's, ARENA_BASELINE_IMAGE)"
    ),
    log_file: str = typer.Option(DEFAULT_LOG, "--log", help="event log file"),
    address: str = typer.Option("auto", help="Ray cluster address"),
    no_king: str = typer.Option(
        "owner", help="weights with no king: owner (all to the subnet owner's uid) or none"
    ),
) -> None:
    """Start the event log, chain watcher, scheduler and crown keeper (detached, named)."""
    if no_king not in NO_KING_POLICIES:
        raise typer.BadParameter(
            f"--no-king must be one of {', '.join(NO_KING_POLICIES)}, got {no_king!r}"
        )

    from harness.profile import get_profile
    from harness.sandbox_image import require_pinned_baseline

    try:
        baseline = require_pinned_baseline(get_profile(profile), baseline_image)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # The evaluators read it from the environment the supervisor forwards to the actors.
    os.environ["ARENA_BASELINE_IMAGE"] = baseline
    log_path = Path(log_file)
    from actors import supervisor
    from actors.placement import NoHeadError
    from chain.client import Backoff, ChainClient, ChainError, resolve_network

    try:
        chain_url = resolve_network(network)
        # Asked once, before any actor starts: a chain watcher would only retry in the background.
        with ChainClient(chain_url, backoff=Backoff(attempts=1), timeout_s=10.0) as chain:
            chain.finalized_number()
    except ValueError as exc:
        typer.echo(f"arena validator start: {exc}", err=True)
        raise typer.Exit(1) from None
    except ChainError as exc:
        typer.echo(
            f"arena validator start: {exc} Start it, or name another with --network.", err=True
        )
        raise typer.Exit(1) from None
    config = ValidatorConfig(
        log_path=str(log_path.resolve()),
        chain_url=chain_url,
        netuid=netuid,
        profile=profile,
        hotkey_uri=hotkey_uri,
        wallet_name=wallet_name,
        wallet_hotkey=wallet_hotkey,
        no_king=no_king,
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _connect(address)
    try:
        supervisor.start(config)
    except NoHeadError as exc:
        raise typer.BadParameter(str(exc), param_hint="--address") from exc
    _print_actors()


@app.command()
def stop(address: str = typer.Option("auto", help="Ray cluster address")) -> None:
    """Stop the validator's actors; the event log file keeps everything they recorded."""
    from actors import supervisor

    _connect(address)
    stopped = supervisor.stop()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(
    address: str = typer.Option("auto", help="Ray cluster address"),
    log_file: str = typer.Option(DEFAULT_LOG, "--log", help="event log file, if stopped"),
) -> None:
    """Actors, queue, king, last weights and recent evals."""
    log_path = Path(log_file)
    from actors import supervisor

    _connect(address)
    _print_actors()
    if supervisor.get("event_log") is not None:
        from actors.log_client import LogClient

        render_status(LogClient())
    elif log_path.exists():
        with EventLog(log_path) as log:
            render_status(LocalLogClient(log))
    else:
        console.print(f"no validator running and no log at {log_path}")


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
    queue = QueueState()
    for e in _replay(log, QUEUE_INPUTS):
        queue.apply(e)
    crown = CrownState()
    for e in _replay(log, CROWN_INPUTS):
        crown.apply(e)
    finished = [e for e in _replay(log, (EvalFinished,)) if isinstance(e, EvalFinished)]
    weights = [e for e in _replay(log, (WeightsSet,)) if isinstance(e, WeightsSet)]
    tables = [
        _queue_table(queue),
        _king_table(crown),
        _weights_table(weights[-1:]),
        _evals_table(finished[-RECENT_EVALS:]),
    ]
    for t in tables:
        console.print(t)
    return tables


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
