"""`arena chain status`: a subnet's neurons and their commitments."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from cli.options import Netuid, Network

app = typer.Typer(help="chain commands", no_args_is_help=True)
console = Console()

TAO = 10**9


@app.command()
def status(
    netuid: Netuid,
    network: Network = "local",
) -> None:
    """Print every neuron of the subnet with its stake, permit, axon and commitment."""
    from chain.client import ChainClient, ChainError, resolve_network
    from chain.commitment import read_commitments
    from chain.metagraph import read_metagraph
    from rules.image_ref import ImageRefError

    try:
        with ChainClient(resolve_network(network)) as client:
            head = client.finalized_number()
            block_hash = client.block_hash(head)
            neurons = read_metagraph(client, netuid, block_hash)
            commitments = {c.hotkey: c for c in read_commitments(client, netuid, block_hash)}
    except (ChainError, ValueError) as exc:
        console.print(f"[red]cannot read netuid {netuid}: {exc}[/red]")
        raise typer.Exit(1) from None
    table = Table(title=f"netuid {netuid} at block {head}: {len(neurons)} neurons")
    for column in ("uid", "hotkey", "coldkey", "stake (α)", "permit", "updated", "axon"):
        table.add_column(column)
    table.add_column("commitment (block)", overflow="fold")
    for n in neurons:
        stored = commitments.get(n.hotkey)
        if stored is None:
            commitment = ""
        else:
            try:
                commitment = f"{stored.parse()} ({stored.block})"
            except ImageRefError as exc:
                commitment = f"[red]invalid: {exc.reason}[/red] ({stored.block})"
        table.add_row(
            str(n.uid),
            n.hotkey,
            n.coldkey,
            f"{n.stake / TAO:.3f}",
            "yes" if n.validator_permit else "",
            str(n.last_update),
            f"{n.axon.ip}:{n.axon.port}" if n.axon else "",
            commitment,
        )
    console.print(table)
