"""`arena live ...` commands."""

import typer

app = typer.Typer(help="live commands", no_args_is_help=True)
