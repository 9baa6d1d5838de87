"""`arena keys create|revoke|list`: API keys for the gateway (only their hashes are stored)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.options import KeysFile
from serve_apps.keys import KeyStoreError, create_key, default_keys_path, load_keys, revoke_key

app = typer.Typer(help="API keys for the gateway.", no_args_is_help=True)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="who the key is for")],
    rate: Annotated[float, typer.Option(help="sustained requests per second")] = 5.0,
    burst: Annotated[int, typer.Option(help="requests allowed at once")] = 20,
    keys_file: KeysFile = None,
) -> None:
    """Create a key and print its secret (shown only this once)."""
    try:
        key, secret = create_key(keys_file or default_keys_path(), name, rate, burst)
    except KeyStoreError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{key.key_id}\t{secret}")


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id, as `arena keys list` shows it")],
    keys_file: KeysFile = None,
) -> None:
    """Revoke a key; the gateway refuses it from its next request on."""
    try:
        key = revoke_key(keys_file or default_keys_path(), key_id)
    except KeyStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {key.key_id} ({key.name})")


@app.command("list")
def list_keys(keys_file: KeysFile = None) -> None:
    """List every key (no secrets: only their hashes are stored)."""
    table = Table("key id", "name", "created (UTC)", "rate/s", "burst", "status")
    for key in load_keys(keys_file or default_keys_path()):
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created_at))
        status = "active" if key.active else "revoked"
        table.add_row(key.key_id, key.name, created, f"{key.rate_per_s:g}", str(key.burst), status)
    Console().print(table)
