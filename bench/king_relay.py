"""The king's relay: time-to-first-token and requests/s added by the hop from the node's address
to the king's container (``serve_apps.king_relay``).

    python -m bench.king_relay [--tokens 16] [--ttft-requests 300] [--concurrency 32]
                               [--duration-s 4]

The upstream is ``serve_apps.synthetic`` in its own process (fixed tokens, no model); the relay
runs on an event loop of its own in this process, as it does in the king's server, and the
client reads either the upstream itself (``direct``) or the relay (``relay``), the two taken in
turn (``bench.gateway``'s measurement). Writes ``bench/results/king_relay-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
from concurrent.futures import Future

import msgspec
from rich.console import Console

from bench.gateway import (
    best_rates,
    path_results,
    results_table,
    start_synthetic,
    ttft_samples,
    wait_healthy,
)
from bench.results import write_result
from chain.chopsticks import free_port
from serve_apps.king_relay import Relay

__all__ = ["main"]


def _relay_in_thread(target_port: int) -> tuple[Relay, asyncio.AbstractEventLoop]:
    """A relay to 127.0.0.1:``target_port`` on a loop running in a daemon thread."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    opened: Future[Relay] = asyncio.run_coroutine_threadsafe(
        Relay.open("127.0.0.1", "127.0.0.1", target_port), loop
    )
    return opened.result(timeout=10), loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--ttft-requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=4.0)
    args = parser.parse_args()

    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    server = start_synthetic(port, args.tokens)
    console = Console(width=120)
    try:
        wait_healthy(upstream + "/health", process=server)
        relay, loop = _relay_in_thread(port)
        paths = [("direct", upstream, {}), ("relay", relay.endpoint, {})]
        console.print("measuring TTFT, direct and through the relay ...")
        ttft = asyncio.run(ttft_samples(paths, args.ttft_requests))
        rates = best_rates(paths, args.concurrency, args.duration_s, console)
        asyncio.run_coroutine_threadsafe(relay.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)

    results = path_results(paths, ttft, rates)
    title = f"king relay overhead ({args.tokens} tokens/stream, synthetic upstream)"
    console.print(results_table(title, results, args.concurrency))
    body = {
        "tokens": args.tokens,
        "ttft_requests": args.ttft_requests,
        "concurrency": args.concurrency,
        "duration_s": args.duration_s,
        "results": msgspec.to_builtins(results),
    }
    console.print(f"wrote {write_result('king_relay', body)}")


if __name__ == "__main__":
    main()
