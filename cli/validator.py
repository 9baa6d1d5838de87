"""`arena validator ...` commands."""

import typer

app = typer.Typer(help="validator commands", no_args_is_help=True)
