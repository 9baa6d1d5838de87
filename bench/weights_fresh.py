"""Weights kept fresh: a WeightsKeeper over several tempos on a short-tempo subnet.

Starts its own chopsticks node and subnet (tempo 10, rate limit 3, activity cutoff 30), then
builds one block at a time and steps the keeper after each, as the crown keeper does after each
fold step; the king changes once half-way. It runs twice, with commit-reveal off and on, and
reports sets made (commits and reveals under commit-reveal), sets refused (goal 0), and the
largest age of the chain's ``LastUpdate`` and of its revealed ``Weights`` against the activity
cutoff (both must stay below it). Run: ``python -m bench.weights_fresh``.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from actors.weights_keeper import WeightsKeeper
from bench.results import write_result
from chain.chopsticks import start_chopsticks
from chain.client import ChainClient
from chain.localnet import LocalSubnet, SubnetParams, advance_blocks, bootstrap_subnet, dev_accounts
from chain.weights import read_weights_timing
from events.types import Event, WeightsCommitted, WeightsSet

__all__ = ["ACTIVITY_CUTOFF", "RATE_LIMIT", "TEMPO", "TEMPOS", "main", "measure"]

TEMPO = 10
RATE_LIMIT = 3
ACTIVITY_CUTOFF = 30
TEMPOS = 6


def _sudo(client: ChainClient, subnet: LocalSubnet, function: str, **params) -> None:
    client.sudo(client.compose_call("AdminUtils", function, params), subnet.sudo)


def measure(client: ChainClient, commit_reveal: bool) -> dict:
    subnet = bootstrap_subnet(
        client, 2, SubnetParams(tempo=TEMPO, weights_set_rate_limit=RATE_LIMIT)
    )
    netuid, hotkey = subnet.netuid, subnet.validator.ss58_address
    _sudo(
        client, subnet, "sudo_set_activity_cutoff", netuid=netuid, activity_cutoff=ACTIVITY_CUTOFF
    )
    if commit_reveal:
        _sudo(client, subnet, "sudo_set_commit_reveal_weights_enabled", netuid=netuid, enabled=True)
    kings = [
        client.query("SubtensorModule", "Uids", [netuid, m.ss58_address]) for m in subnet.miners
    ]
    keeper = WeightsKeeper(client, subnet.validator, netuid, retry_s=0)
    events: list[Event] = []
    first = client.finalized_number()
    blocks = TEMPO * TEMPOS
    max_update_age = max_weights_age = 0
    weights_since = 0  # block of the last set (or reveal) that put weights on chain
    for i in range(blocks):
        king = kings[0] if i < blocks // 2 else kings[1]
        step = keeper.step(king, f"king-{king}")
        events += step
        for e in step:
            if isinstance(e, WeightsSet) and e.success:
                weights_since = e.block
        head = advance_blocks(client, 1)
        timing = read_weights_timing(client, netuid, hotkey)
        if weights_since:
            max_update_age = max(max_update_age, head - timing.last_update)
            max_weights_age = max(max_weights_age, head - weights_since)
    sets = [e for e in events if isinstance(e, WeightsSet)]
    return {
        "commit_reveal": commit_reveal,
        "blocks": client.finalized_number() - first,
        "tempo": TEMPO,
        "rate_limit": RATE_LIMIT,
        "activity_cutoff": ACTIVITY_CUTOFF,
        "sets_made": sum(e.success for e in sets),
        "commits_made": sum(isinstance(e, WeightsCommitted) for e in events),
        "sets_refused": sum(not e.success for e in sets),
        "max_last_update_age": max_update_age,
        "max_weights_age": max_weights_age,
    }


def main() -> None:
    sudo, accounts = dev_accounts(2)
    node = start_chopsticks(accounts=accounts, sudo=sudo)
    try:
        with ChainClient(node.url) as client:
            rows = [measure(client, commit_reveal) for commit_reveal in (False, True)]
    finally:
        node.stop()
    table = Table(title=f"weights kept fresh over {TEMPOS} tempos")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=160).print(table)
    print(f"wrote {write_result('weights_fresh', {'runs': rows})}")


if __name__ == "__main__":
    main()
