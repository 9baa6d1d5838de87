"""`arena miner commit`: put a submission (``image@sha256:<digest>``) on chain."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.live import serve_axon

app = typer.Typer(help="miner commands", no_args_is_help=True)
console = Console()


@app.command()
def commit(
    image: str = typer.Option(
        ..., help="registry/path[:tag], e.g. ghcr.io/me/miner (a tag is kept; the digest is pulled)"
    ),
    digest: str = typer.Option(..., help="sha256:<64 hex> of the image manifest"),
    netuid: int = typer.Option(..., help="subnet to submit to"),
    network: str = typer.Option("local", help="local, finney, test or a ws:// URL"),
    wallet_name: str = typer.Option("", help="wallet directory name"),
    wallet_hotkey: str = typer.Option("", help="hotkey name in the wallet"),
    wallet_path: str = typer.Option("~/.bittensor/wallets", help="directory holding the wallets"),
    hotkey_uri: str = typer.Option("", help="dev key URI such as //Bob//miner0 (local nets only)"),
) -> None:
    """Validate the reference, check the hotkey is registered, commit, and print the block."""
    from chain.client import ChainClient, ChainError, resolve_network
    from chain.commitment import commit_image
    from chain.metagraph import read_neuron_uid
    from chain.wallet import WalletError, dev_keypair, load_wallet
    from rules.image_ref import ImageRefError, parse_submission_ref

    try:
        ref = parse_submission_ref(f"{image}@{digest}")
    except ImageRefError as exc:
        raise typer.BadParameter(f"{image}@{digest}: {exc}") from None
    try:
        if hotkey_uri:
            hotkey = dev_keypair(hotkey_uri)
        elif wallet_name and wallet_hotkey:
            hotkey = load_wallet(wallet_name, wallet_hotkey, Path(wallet_path)).hotkey
        else:
            raise typer.BadParameter("give --wallet-name and --wallet-hotkey (or --hotkey-uri)")
    except WalletError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        with ChainClient(resolve_network(network)) as client:
            uid = read_neuron_uid(client, netuid, hotkey.ss58_address)
            if uid is None:
                console.print(
                    f"[red]hotkey {hotkey.ss58_address} is not registered on netuid {netuid}; "
                    "register it first (btcli subnet register)[/red]"
                )
                raise typer.Exit(1)
            result = commit_image(client, hotkey, netuid, ref)
    except (ChainError, ValueError) as exc:
        console.print(f"[red]commit failed: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"committed [bold]{ref}[/bold] for uid {uid} ({hotkey.ss58_address}) "
        f"in block {result.block} ({result.block_hash})"
    )


# Live-endpoint miners register where validators reach them; the command lives with the rest of
# live mode and is offered here too, where miners look for it.
app.command("serve-axon")(serve_axon)
