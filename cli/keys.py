"""`arena keys ...` commands."""

import typer

app = typer.Typer(help="keys commands", no_args_is_help=True)
