"""Evaluator time per challenger: one round against one kept-up baseline, next to rounds of one.

    python -m bench.round [--seed HEX] [--sizes 1 3 6]

(needs dockerd, the registry and .cache/images.json)

Straight through the harness on real containers (no chain, no Ray), on the ``local`` profile.
For each round size N in 1, 3 and 6, the same N honest local images (baseline, miner-ref,
miner-fast, repeated to make 6: repeats are fine for timing), with the same seed, in two orders:

  one round      ``harness.eval.evaluate_round``: B0, C1, B1, C2, B2, ... the baseline started
                 once and kept up (what the validator runs now);
  rounds of one  ``harness.eval.evaluate`` per image: B, C, B' each, the baseline started
                 again for every challenger (the old order, for comparison).

Per size and order: wall time, wall time per challenger, baseline start-ups (counted from
dockerd's container start events, so a restart after a failed health check shows), and whether
both orders gave the same verdicts. From the same runs, the phases that hold the evaluator
(median seconds): a baseline start-up (first baseline measurement's start minus the pulls), one
baseline measurement (warm-up included), and a challenger start-up (the challenger's phase minus
one measurement, so start-up plus measurement is exact).

The cost model (:func:`cost_rows`, plain data) turns such phases into evaluator minutes and
GPU-minutes per challenger for a profile: one round of N takes
``B0 + N * (C start + C measure + B measure)`` with ``B0`` a baseline start-up and measurement;
the order before rounds took ``N * (2 B starts + C start + 3 measurements)`` (B and B' each on
a freshly started baseline). The gate's teacher-forced re-score, pulls and the validator's own
work are in neither. It is printed for the phases measured here and for ``sn-h200`` with the
start-up and speed assumptions stated as ``SN_H200_*`` constants.
Prints rich tables and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import statistics
import threading
import time
from collections.abc import Iterable

import docker
import msgspec
from rich.console import Console
from rich.table import Table

from bench.results import write_result
from harness.eval import EvalReport, evaluate, evaluate_round
from harness.measurement import Measurement
from harness.profile import Profile, built_image, get_profile
from harness.runner import LABEL

__all__ = [
    "Phases",
    "RunTimes",
    "baseline_starts",
    "cost_rows",
    "main",
    "measure_seconds",
    "measured_phases",
    "old_order_seconds",
    "round_seconds",
    "sn_h200_phases",
    "SIZES",
    "IMAGES",
    "SN_H200_BASELINE_START_S",
    "SN_H200_CHALLENGER_START_S",
    "SN_H200_TTFT_S",
    "SN_H200_TPOT_S",
    "CostRow",
]

SIZES = (1, 3, 6)
IMAGES = ("baseline", "miner-ref", "miner-fast")

# sn-h200 assumptions (Qwen2.5-72B-Instruct in bf16, tensor-parallel over the evaluator's 4 H200):
# vLLM loading 145 GB of weights from local NVMe plus CUDA graph capture, for the baseline and
# for a miner's engine alike; and the speed of one stream at the profile's 1024-token prompts.
SN_H200_BASELINE_START_S = 300.0
SN_H200_CHALLENGER_START_S = 300.0
SN_H200_TTFT_S = 0.15
SN_H200_TPOT_S = 0.025  # about 40 output tokens/s per stream


class Phases(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds of what holds the evaluator: start-ups and one measurement (warm-up included)."""

    baseline_start_s: float
    challenger_start_s: float
    measure_s: float


class CostRow(msgspec.Struct, frozen=True, kw_only=True):
    """The evaluator time per challenger of N challengers, in the old order and in one round."""

    challengers: int
    old_order_min: float
    round_min: float
    old_order_gpu_min: float
    round_gpu_min: float

    @property
    def ratio(self) -> float:
        """How many times less evaluator time per challenger one round takes."""
        return self.old_order_min / self.round_min


class RunTimes(msgspec.Struct, frozen=True, kw_only=True):
    """What the bench saw of one ``evaluate_round`` call (a round of one included)."""

    started_at: float  # unix seconds, when the call began
    pull_s: float  # the reports' pull laps: every image, the baseline's included
    baseline: list[tuple[float, float]]  # (start, end) unix seconds of each baseline measurement
    challenger_s: list[float]  # the challenger phase of each challenger measured to the end


def round_seconds(p: Phases, n: int, *, baseline_stays_up: bool = True) -> float:
    """One round of ``n``: B0 (start-up and measurement), then per challenger C start, C, B.

    Where the baseline cannot stay up beside a challenger (``Profile.baseline_stays_up``), each
    B after a challenger pays a baseline start-up again.
    """
    restart = 0.0 if baseline_stays_up else p.baseline_start_s
    per_challenger = p.challenger_start_s + restart + 2 * p.measure_s
    return p.baseline_start_s + p.measure_s + n * per_challenger


def old_order_seconds(p: Phases, n: int) -> float:
    """``n`` evals in the order before rounds: B, C, B' with the baseline started for B and B'."""
    return n * (2 * p.baseline_start_s + p.challenger_start_s + 3 * p.measure_s)


def cost_rows(p: Phases, profile: Profile, sizes: Iterable[int]) -> list[CostRow]:
    """Minutes and GPU-minutes per challenger; the evaluator holds the profile's GPUs throughout."""
    rows = []
    for n in sizes:
        old = old_order_seconds(p, n) / 60 / n
        new = round_seconds(p, n, baseline_stays_up=profile.baseline_stays_up) / 60 / n
        gpus = profile.evaluator_num_gpus
        rows.append(
            CostRow(
                challengers=n,
                old_order_min=old,
                round_min=new,
                old_order_gpu_min=old * gpus,
                round_gpu_min=new * gpus,
            )
        )
    return rows


def measure_seconds(profile: Profile, ttft_s: float, tpot_s: float) -> float:
    """One measurement under ``profile``'s load, on a server with that TTFT and TPOT.

    The warm-up goes one request at a time; then every pass of every level sends
    ``num_prompts`` requests at concurrency c, ``ceil(num_prompts / c)`` waves of one request's
    time, ``ttft + (output_tokens - 1) * tpot`` (batching assumed free: an upper bound on speed).
    """
    one = ttft_s + (profile.output_tokens - 1) * tpot_s
    waves = sum(math.ceil(profile.num_prompts / c) for c in profile.concurrency_levels)
    return (profile.warmup_requests + profile.passes * waves) * one


def sn_h200_phases() -> Phases:
    """The ``sn-h200`` phases from the ``SN_H200_*`` assumptions and the profile's load."""
    return Phases(
        baseline_start_s=SN_H200_BASELINE_START_S,
        challenger_start_s=SN_H200_CHALLENGER_START_S,
        measure_s=measure_seconds(get_profile("sn-h200"), SN_H200_TTFT_S, SN_H200_TPOT_S),
    )


def measured_phases(runs: list[RunTimes]) -> Phases:
    """Median phases over ``runs``; challenger start-up is its phase minus one measurement."""
    measure = statistics.median(end - start for run in runs for start, end in run.baseline)
    first = [run.baseline[0][0] - run.started_at - run.pull_s for run in runs if run.baseline]
    challenger = [c - measure for run in runs for c in run.challenger_s]
    return Phases(
        baseline_start_s=statistics.median(first),
        challenger_start_s=statistics.median(challenger),
        measure_s=measure,
    )


def baseline_starts(container_names: Iterable[str], prefix: str) -> int:
    """How many of the started sandboxes are baselines of the evals named ``prefix``..."""
    # Sandboxes are named arena-<eval id>-<role>-<6 hex>; a round names its baseline after its
    # first eval id.
    mine = (n for n in container_names if n.startswith(f"arena-{prefix}-"))
    return sum(1 for n in mine if "-baseline-" in n)


class _Watch:
    """Collects one ``evaluate_round`` call's timings through its callbacks."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.measured: dict[int, tuple[float, float]] = {}  # plan slot -> (start, end)

    def on_baseline(self, _i: int, _phase: str, m: Measurement) -> None:
        # One measurement is the "after" of one challenger and the "before" of the next: the
        # first call, right after it ended, times it.
        self.measured.setdefault(m.slot, (m.started_at, time.time()))

    def times(self, reports: list[EvalReport]) -> RunTimes:
        return RunTimes(
            started_at=self.started_at,
            pull_s=sum(r.seconds.get("pull", 0.0) for r in reports),
            baseline=list(self.measured.values()),
            challenger_s=[r.seconds["challenger"] for r in reports if r.baseline_after],
        )


def _run(
    client: docker.DockerClient, order: str, images: list[str], seed: str, prefix: str
) -> tuple[float, list[EvalReport], list[RunTimes]]:
    """Wall seconds, reports and timings of ``images`` in ``order`` ("round" or "one")."""
    profile = get_profile("local")
    ids = [f"{prefix}-{i}" for i in range(len(images))]
    started = time.monotonic()
    if order == "round":
        watch = _Watch()
        reports = evaluate_round(
            client, images, profile, seed, eval_ids=ids, on_baseline=watch.on_baseline
        )
        runs = [watch.times(reports)]
    else:
        reports, runs = [], []
        for image, eval_id in zip(images, ids, strict=True):
            watch = _Watch()
            report = evaluate(
                client,
                image,
                profile,
                seed,
                eval_id=eval_id,
                on_baseline=lambda phase, m, w=watch: w.on_baseline(0, phase, m),
            )
            reports.append(report)
            runs.append(watch.times([report]))
    return time.monotonic() - started, reports, runs


class _SandboxStarts(contextlib.AbstractContextManager["_SandboxStarts"]):
    """Names of the sandboxes started while it is open, read from dockerd's live event stream.

    Live, not queried afterwards: dockerd keeps only its last 256 events, and a long round on a
    busy engine outlives them.
    """

    def __init__(self, client: docker.DockerClient) -> None:
        self.names: list[str] = []
        self._stream = client.events(
            filters={"type": "container", "event": "start", "label": LABEL}, decode=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends in an error when closed
            for event in self._stream:
                self.names.append(event["Actor"]["Attributes"].get("name", ""))

    def __exit__(self, *exc_info: object) -> None:
        self._stream.close()
        self._reader.join(timeout=10)


def _cost_table(title: str, rows: list[CostRow], *, gpu: bool) -> Table:
    unit = "GPU-min/ch" if gpu else "min/ch"
    table = Table(title=title)
    for column in ("challengers", f"before rounds {unit}", f"one round {unit}", "before / round"):
        table.add_column(column, justify="right")
    for row in rows:
        old = row.old_order_gpu_min if gpu else row.old_order_min
        new = row.round_gpu_min if gpu else row.round_min
        table.add_row(str(row.challengers), f"{old:.1f}", f"{new:.1f}", f"{row.ratio:.2f}x")
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", default="", help="round seed (a block hash); random if unset")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="round sizes to run (challengers)"
    )
    options = parser.parse_args()
    seed = options.seed or "0x" + secrets.token_hex(32)
    console = Console()
    client = docker.from_env()
    tag = f"bench{os.getpid()}"
    pool = [built_image(IMAGES[i % len(IMAGES)]) for i in range(max(options.sizes))]

    sizes, all_runs = [], []
    for n in options.sizes:
        by_order = {}
        for order in ("round", "one"):
            prefix = f"{tag}-{order}{n}"
            console.print(
                f"{n} challenger(s), {'one round' if order == 'round' else 'rounds of one'}"
            )
            with _SandboxStarts(client) as starts:
                wall, reports, runs = _run(client, order, pool[:n], seed, prefix)
            names = starts.names
            all_runs += runs
            by_order[order] = {
                "wall_s": wall,
                "per_challenger_s": wall / n,
                "baseline_starts": baseline_starts(names, prefix),
                "verdicts": [r.verdict for r in reports],
                "reasons": [r.reason for r in reports],
                "scores": [r.score for r in reports],
                "seconds": [r.seconds for r in reports],
            }
        sizes.append({"challengers": n, "images": pool[:n], **by_order})

    table = Table(title=f"evaluator time per challenger, profile local, seed {seed[:18]}...")
    for column in (
        "challengers",
        "round s",
        "round s/ch",
        "round B starts",
        "rounds of one s",
        "rounds of one s/ch",
        "rounds of one B starts",
        "speed-up",
        "same verdicts",
    ):
        table.add_column(column, justify="right")
    for size in sizes:
        new, old = size["round"], size["one"]
        table.add_row(
            str(size["challengers"]),
            f"{new['wall_s']:.0f}",
            f"{new['per_challenger_s']:.0f}",
            str(new["baseline_starts"]),
            f"{old['wall_s']:.0f}",
            f"{old['per_challenger_s']:.0f}",
            str(old["baseline_starts"]),
            f"{old['wall_s'] / new['wall_s']:.2f}x",
            "yes" if new["verdicts"] == old["verdicts"] else "NO",
        )
    console.print(table)

    local, h200, h200x8 = (get_profile(n) for n in ("local", "sn-h200", "sn-h200x8"))
    phases = measured_phases(all_runs)
    local_rows = cost_rows(phases, local, SIZES)
    h200_phases = sn_h200_phases()
    h200_rows = cost_rows(h200_phases, h200, SIZES)
    h200x8_rows = cost_rows(h200_phases, h200x8, SIZES)
    console.print(
        f"measured here: baseline start-up {phases.baseline_start_s:.0f} s, challenger start-up "
        f"{phases.challenger_start_s:.0f} s, one measurement {phases.measure_s:.0f} s"
    )
    console.print(_cost_table("cost model, phases measured here", local_rows, gpu=False))
    console.print(
        f"sn-h200 assumed: start-ups {SN_H200_BASELINE_START_S:.0f} s (baseline) and "
        f"{SN_H200_CHALLENGER_START_S:.0f} s (challenger), TTFT {SN_H200_TTFT_S} s, TPOT "
        f"{SN_H200_TPOT_S} s: one measurement {h200_phases.measure_s:.0f} s on "
        f"{h200.evaluator_num_gpus} GPUs"
    )
    console.print(
        _cost_table("cost model, sn-h200 (4 GPUs: the baseline restarts)", h200_rows, gpu=True)
    )
    console.print(
        _cost_table("cost model, sn-h200x8 (8 GPUs: the baseline stays up)", h200x8_rows, gpu=True)
    )

    body = {
        "seed": seed,
        "sizes": sizes,
        "measured_phases": msgspec.to_builtins(phases),
        "cost_model": {
            "local": msgspec.to_builtins(local_rows),
            "sn-h200": msgspec.to_builtins(h200_rows),
            "sn-h200x8": msgspec.to_builtins(h200x8_rows),
            "sn-h200_phases": msgspec.to_builtins(h200_phases),
            "sn-h200_assumed": {
                "baseline_start_s": SN_H200_BASELINE_START_S,
                "challenger_start_s": SN_H200_CHALLENGER_START_S,
                "ttft_s": SN_H200_TTFT_S,
                "tpot_s": SN_H200_TPOT_S,
            },
        },
    }
    out = write_result("round", body)
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
