"""Entry point of the ``arena`` command. Each area registers its own typer app here."""

import typer

from cli import bench, chain, eval, history, keys, live, miner, replay, subnet, validator

app = typer.Typer(
    name="arena",
    help="Arena: an inference-optimization subnet for Bittensor.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(chain.app, name="chain")
app.add_typer(miner.app, name="miner")
app.add_typer(validator.app, name="validator")
app.add_typer(keys.app, name="keys")
app.add_typer(live.app, name="live")
app.command("bench")(bench.bench)
app.command("eval")(eval.eval_image)
app.command("history")(history.history)
app.command("replay")(replay.replay)
app.command("sql")(history.sql)
app.command("subnet")(subnet.subnet)

if __name__ == "__main__":
    app()
