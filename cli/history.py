"""`arena history` and `arena sql`: read the event log as tables.

Both answer from the running ``EventLogActor`` when a Ray cluster that runs it is reachable
(``--ray-address`` or ``RAY_ADDRESS``), else from the DuckDB file directly (``--log``, default
``.arena/events.duckdb``, as for every command). DuckDB lets one process hold the file, so while
the actor runs, queries must go through it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.table import Table

from cli.options import DEFAULT_LOG_PATH, LogPath, RayAddress
from rules.errors import ArenaError

KINGS = "SELECT ts, change, hotkey, score, block, eval_id FROM kings ORDER BY seq"
EVALUATIONS = """
SELECT ts, eval_id, hotkey, role, verdict, score, noise, reason
FROM evaluations ORDER BY seq DESC LIMIT ?
"""
WEIGHTS = """
SELECT ts, block, success, uids, weights, extrinsic_hash, error
FROM weights ORDER BY seq DESC LIMIT ?
"""


class Reader(Protocol):
    def sql(
        self, query: str, params: Sequence[Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]: ...


class HistoryError(ArenaError):
    """The log could not be reached; the message says where it looked and what to do."""


@contextlib.contextmanager
def open_reader(log: Path, ray_address: str) -> Iterator[Reader]:
    """The log actor's client when a cluster runs it, else the log file opened directly."""
    address = ray_address
    if address:
        client = _actor_client(address)
        if client is not None:
            yield client
            return
    from events.log import EventLog, LogLockedError

    path = log
    if not path.exists():
        raise HistoryError(
            f"no event log at {path} and no log actor reachable"
            + (f" at {address}" if address else " (RAY_ADDRESS is not set)")
            + "; pass --log PATH or --ray-address ADDRESS"
        )
    try:
        with EventLog(path) as event_log:
            yield event_log
    except LogLockedError as exc:
        raise HistoryError(f"{exc}; e.g. --ray-address auto") from exc


def _actor_client(address: str) -> Reader | None:
    import ray

    from actors.event_log import ACTOR_NAME, NAMESPACE
    from actors.log_client import LogClient
    from actors.ray_auth import use_cluster_auth

    if not ray.is_initialized():
        use_cluster_auth()
        try:
            ray.init(address=address, namespace=NAMESPACE, logging_level="ERROR")
        except (ConnectionError, RuntimeError):
            return None
    try:
        return LogClient(ray.get_actor(ACTOR_NAME, namespace=NAMESPACE))
    except ValueError:  # no actor of that name on this cluster
        return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> Table:
    """A rich table of query results, cells formatted for reading."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


def history(
    log: LogPath = DEFAULT_LOG_PATH,
    ray_address: RayAddress = "",
    limit: Annotated[int, typer.Option(help="recent evaluations and weights to show")] = 20,
) -> None:
    """Kings over time, recent evaluations and weights set."""
    console = Console()
    try:
        with open_reader(log, ray_address) as reader:
            tables = [
                render("Kings over time", *reader.sql(KINGS)),
                render(f"Recent evaluations (last {limit})", *reader.sql(EVALUATIONS, [limit])),
                render(f"Weights set (last {limit})", *reader.sql(WEIGHTS, [limit])),
            ]
    except HistoryError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    for table in tables:
        console.print(table)


def sql(
    query: Annotated[str, typer.Argument(help="one read-only statement, e.g. SELECT * FROM kings")],
    log: LogPath = DEFAULT_LOG_PATH,
    ray_address: RayAddress = "",
) -> None:
    """Run a read-only SQL query over the event log (views: submissions, evaluations, kings,
    weights, organic_usage; table: events)."""
    import duckdb

    from events.log import ReadOnlyQueryError

    console = Console()
    errors: tuple[type[Exception], ...] = (HistoryError, ReadOnlyQueryError, duckdb.Error)
    if "ray" in sys.modules:  # a query the actor refused comes back wrapped by Ray
        errors += (sys.modules["ray"].exceptions.RayTaskError,)
    try:
        with open_reader(log, ray_address) as reader:
            columns, rows = reader.sql(query)
    except errors as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(render("", columns, rows))
    console.print(f"{len(rows)} rows")
