"""`arena miner ...` commands."""

import typer

app = typer.Typer(help="miner commands", no_args_is_help=True)
