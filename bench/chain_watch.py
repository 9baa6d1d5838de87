"""Chain watcher benchmark: detection latency and RPC calls per block at 64 and 256 miners.

Starts its own chopsticks node, bootstraps one subnet per size, follows it with a ChainWatch in
a thread and measures (a) the time from a commitment's inclusion (its submit returning) to its
SubmissionCommitted event, and the blocks between, (b) the watcher's RPC requests per empty
block and per block holding one commitment. Run: ``python -m bench.chain_watch``.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from actors.chain_watcher import ChainWatch
from chain.chopsticks import start_chopsticks
from chain.client import ChainClient
from chain.commitment import commit_image
from chain.localnet import SubnetParams, advance_blocks, bootstrap_subnet, dev_accounts
from events.types import Event, SubmissionCommitted

__all__ = [
    "SIZES",
    "COMMITS",
    "EMPTY_BLOCKS",
    "RESULTS",
    "DIGEST",
    "measure",
    "main",
]


SIZES = (64, 256)
COMMITS = 3
EMPTY_BLOCKS = 5
RESULTS = Path(__file__).parent / "results" / "chain_watch.json"
DIGEST = "sha256:" + "ab" * 32


def _wait(condition, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the watcher did not catch up in time")
        time.sleep(0.01)


def measure(url: str, miners: int) -> dict:
    client = ChainClient(url)
    # A long tempo keeps epochs (slow over hundreds of neurons under chopsticks) out of the run.
    subnet = bootstrap_subnet(client, miners, SubnetParams(tempo=1000))
    watch_client = ChainClient(url)
    watch = ChainWatch(watch_client, subnet.netuid)
    seen: dict[str, float] = {}

    def emit(events: list[Event]) -> None:
        now = time.monotonic()
        for e in events:
            if isinstance(e, SubmissionCommitted):
                seen[e.key] = now

    stop = threading.Event()
    thread = threading.Thread(target=watch.run, args=(url, stop, emit), daemon=True)
    thread.start()
    try:
        head = client.finalized_number()
        _wait(lambda: watch.scanned >= head)

        calls = watch_client.rpc_calls
        head = advance_blocks(client, EMPTY_BLOCKS)
        _wait(lambda: watch.scanned >= head)
        per_empty = (watch_client.rpc_calls - calls) / EMPTY_BLOCKS

        latencies, block_lags, per_commit_block = [], [], []
        for i in range(COMMITS):
            miner = subnet.miners[i]
            calls = watch_client.rpc_calls
            result = commit_image(client, miner, subnet.netuid, f"127.0.0.1:5000/b/m{i}@{DIGEST}")
            included = time.monotonic()
            key = f"{miner.ss58_address}@{result.block}"
            _wait(lambda key=key: key in seen)
            _wait(lambda block=result.block: watch.scanned >= block)
            # Instant mode builds no block between: the head the event came with is ``scanned``.
            latencies.append((seen[key] - included) * 1000)
            block_lags.append(watch.scanned - result.block)
            per_commit_block.append(watch_client.rpc_calls - calls)
    finally:
        stop.set()
        thread.join(timeout=30)
    return {
        "miners": miners,
        "detect_ms_median": statistics.median(latencies),
        "detect_ms_max": max(latencies),
        "detect_blocks_max": max(block_lags),
        "rpc_per_empty_block": per_empty,
        "rpc_per_commit_block_median": statistics.median(per_commit_block),
    }


def main() -> None:
    sudo, accounts = dev_accounts(max(SIZES))
    node = start_chopsticks(accounts=accounts, sudo=sudo)
    try:
        rows = [measure(node.url, size) for size in SIZES]
    finally:
        node.stop()
    table = Table(title="chain watcher: detection and per-block cost")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console(width=160).print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
