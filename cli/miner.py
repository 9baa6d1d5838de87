"""`arena miner commit`: put a submission (``image@sha256:<digest>``) on chain."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli.live import serve_axon
from cli.options import (
    DEFAULT_WALLET,
    DEFAULT_WALLET_PATH,
    HotkeyUri,
    Netuid,
    Network,
    WalletHotkey,
    WalletName,
    WalletPath,
    load_hotkey,
)

app = typer.Typer(help="miner commands", no_args_is_help=True)
console = Console()


@app.command()
def commit(
    image: Annotated[
        str,
        typer.Option(
            help="registry/path[:tag], e.g. ghcr.io/me/miner (a tag is kept; the digest is pulled)"
        ),
    ],
    digest: Annotated[str, typer.Option(help="sha256:<64 hex> of the image manifest")],
    netuid: Netuid,
    network: Network = "local",
    wallet_name: WalletName = DEFAULT_WALLET,
    wallet_hotkey: WalletHotkey = DEFAULT_WALLET,
    wallet_path: WalletPath = DEFAULT_WALLET_PATH,
    hotkey_uri: HotkeyUri = "",
) -> None:
    """Validate the reference, check the hotkey is registered, commit, and print the block."""
    from chain.client import ChainClient, ChainError, resolve_network
    from chain.commitment import commit_image
    from chain.metagraph import read_neuron_uid
    from rules.image_ref import ImageRefError, parse_submission_ref

    try:
        ref = parse_submission_ref(f"{image}@{digest}")
    except ImageRefError as exc:
        raise typer.BadParameter(f"{image}@{digest}: {exc}") from None
    hotkey = load_hotkey(wallet_name, wallet_hotkey, wallet_path, hotkey_uri)
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
