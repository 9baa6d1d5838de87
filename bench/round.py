"""Evaluator time per challenger: one round against one kept-up baseline, next to the old order.

    python -m bench.round [--seed HEX] [--sizes 1 3 6]

(needs dockerd, the registry and .cache/images.json)

Straight through the harness on real containers (no chain, no Ray), on the ``local`` profile.
For each round size N in 1, 3 and 6, the same N honest local images (baseline, miner-ref,
miner-fast, repeated to make 6: repeats are fine for timing), with the same seed, in two orders:

  old order      one eval per image, each B, C, B' with the baseline started for B and again
                 for B' (what the validator ran before rounds: ``harness.eval.evaluate_round``
                 per image on the profile with ``baseline_stays_up`` off, which is the flag)
  one round      ``harness.eval.evaluate_round`` over all N: B0, C1, C2, B1, ... (the profile's
                 ``challengers_per_baseline`` to a bracket) with the baseline started once and
                 kept up (what the validator runs now)

Per size and order: wall time, wall time per challenger, baseline start-ups (counted from
dockerd's container start events, so a restart after a failed health check shows), and whether
both orders gave the same verdicts. Where the time went, from the harness's progress callbacks
and dockerd's start events (:func:`split_time`): start-ups (a fresh container's start to its
first scored pass, its warm-up's one-time work included), measurements (to the last answer), the
gate, and the validator's overhead (the rest: pulls, health checks of a kept-up baseline,
stopping containers, bookkeeping).

The cost model (:func:`cost_rows`, plain data) turns the median phases into evaluator minutes and
GPU-minutes per challenger for a profile: one round of N takes
``B0 + N * (C start + C measure) + brackets * B measure`` with ``B0`` a baseline start-up and
measurement and ``ceil(N / challengers_per_baseline)`` brackets (and a baseline start-up per
bracket where the baseline cannot stay up);
the old order took ``N * (2 B starts + C start + 3 measurements)``. The gate, pulls and the
validator's own work are in neither. It is printed for the phases measured here and for
``sn-h200`` with the start-up and speed assumptions stated as ``SN_H200_*`` constants.
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
from harness.eval import EvalReport, Progress, evaluate_round
from harness.profile import Profile, built_image, get_profile
from harness.runner import LABEL

__all__ = [
    "Phases",
    "Split",
    "cost_rows",
    "main",
    "measure_seconds",
    "measured_phases",
    "split_time",
    "old_order_seconds",
    "round_seconds",
    "sn_h200_phases",
    "ORDERS",
    "SIZES",
    "IMAGES",
    "SN_H200_BASELINE_START_S",
    "SN_H200_CHALLENGER_START_S",
    "SN_H200_TTFT_S",
    "SN_H200_TPOT_S",
    "CostRow",
]

SIZES = (1, 3, 6)
ORDERS = ("old", "round")  # the reference order first
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


class Split(msgspec.Struct, frozen=True, kw_only=True):
    """Where one ``evaluate_round`` call's wall time went, in seconds."""

    wall_s: float
    baseline_start_s: list[float]  # each baseline start-up, to its first scored pass
    challenger_start_s: list[float]  # each challenger's, likewise
    measure_s: list[float]  # each measurement, to its last answer
    gate_s: float  # re-scoring on the baseline, the judgement and the score

    @property
    def overhead_s(self) -> float:
        """The rest: pulls, health checks, stopping containers, the validator's bookkeeping."""
        work = sum(self.baseline_start_s) + sum(self.challenger_start_s) + sum(self.measure_s)
        return self.wall_s - work - self.gate_s


def round_seconds(
    p: Phases, n: int, *, baseline_stays_up: bool = True, challengers_per_baseline: int = 1
) -> float:
    """One round of ``n``: B0 (start-up and measurement), then per bracket of
    ``challengers_per_baseline`` challengers each one's start-up and measurement, then B.

    Where the baseline cannot stay up beside a challenger (``Profile.baseline_stays_up``), each
    B after a bracket pays a baseline start-up again.
    """
    brackets = math.ceil(n / challengers_per_baseline)
    restart = 0.0 if baseline_stays_up else p.baseline_start_s
    challengers = n * (p.challenger_start_s + p.measure_s)
    return p.baseline_start_s + p.measure_s + challengers + brackets * (restart + p.measure_s)


def old_order_seconds(p: Phases, n: int) -> float:
    """``n`` evals in the order before rounds: B, C, B' with the baseline started for B and B'."""
    return n * (2 * p.baseline_start_s + p.challenger_start_s + 3 * p.measure_s)


def cost_rows(p: Phases, profile: Profile, sizes: Iterable[int]) -> list[CostRow]:
    """Minutes and GPU-minutes per challenger; the evaluator holds the profile's GPUs throughout."""
    rows = []
    for n in sizes:
        old = old_order_seconds(p, n) / 60 / n
        new = (
            round_seconds(
                p,
                n,
                baseline_stays_up=profile.baseline_stays_up,
                challengers_per_baseline=profile.challengers_per_baseline,
            )
            / 60
            / n
        )
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


def measured_phases(splits: list[Split]) -> Phases:
    """Median start-ups and measurement over ``splits``."""
    return Phases(
        baseline_start_s=statistics.median(t for s in splits for t in s.baseline_start_s),
        challenger_start_s=statistics.median(t for s in splits for t in s.challenger_start_s),
        measure_s=statistics.median(t for s in splits for t in s.measure_s),
    )


_MEASURED_PHASES = {"baseline_before": "baseline", "challenger": "challenger",
                    "baseline_after": "baseline"}  # fmt: skip


def split_time(
    timeline: list[tuple[float, Progress]], starts: list[tuple[float, str]], end: float
) -> Split:
    """Split a round's wall time, from its progress (``(time, Progress)``, the first at its
    start) and its sandboxes' starts (``(time, "baseline" | "challenger")``), ending at ``end``.

    Where a sandbox of the phase's role started, the phase's start-up runs to its first scored
    pass: the boot, the health checks and the warm-up, where a fresh server does its one-time
    work (vLLM CPU compiles kernels on its first request). Its measurement runs from there to
    its last answer. On a kept-up server the measurement starts at the warm-up, and what came
    before it (a health check) is overhead.
    """
    baseline, challenger, measured, gate = [], [], [], 0.0
    phase, role, begun, last = "", "", 0.0, 0.0
    warm: float | None = None
    scored: float | None = None

    def close(now: float) -> None:
        nonlocal gate
        if phase == "gate":
            gate += now - begun
        if warm is None or scored is None:
            return
        if any(begun <= at <= warm and who == role for at, who in starts):
            (baseline if role == "baseline" else challenger).append(scored - begun)
            measured.append(last - scored)
        else:
            measured.append(last - warm)

    for t, p in timeline:
        if p.concurrency == 0 and p.requests == 0:  # a phase begins
            close(t)
            phase, role, begun = p.phase, _MEASURED_PHASES.get(p.phase, ""), t
            warm = scored = None
        elif role and warm is None:  # the warm-up's first event
            warm = t
        elif role and scored is None and p.concurrency > 0:  # the first scored pass
            scored = t
        last = t
    close(end)
    return Split(
        wall_s=end - timeline[0][0],
        baseline_start_s=baseline,
        challenger_start_s=challenger,
        measure_s=measured,
        gate_s=gate,
    )


class _Timeline:
    """Timestamps every :class:`Progress` of the calls it watches (``on_progress``)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Progress]] = []

    def __call__(self, progress: Progress) -> None:
        self.events.append((time.time(), progress))


def _run(
    client: docker.DockerClient, order: str, images: list[str], seed: str, prefix: str
) -> tuple[list[EvalReport], Split, list[str]]:
    """Reports, time split and started sandboxes' names of ``images`` in ``order``."""
    local = get_profile("local")
    ids = [f"{prefix}-{i}" for i in range(len(images))]
    # The old order is a round of one per image on a node that cannot keep the baseline up.
    calls = (
        [(local, images, ids)]
        if order == "round"
        else [
            (msgspec.structs.replace(local, baseline_stays_up=False), [image], [eval_id])
            for image, eval_id in zip(images, ids, strict=True)
        ]
    )
    timeline, reports = _Timeline(), []
    with _SandboxStarts(client) as starts:
        for profile, batch, batch_ids in calls:
            reports += evaluate_round(
                client, batch, profile, seed, eval_ids=batch_ids, on_progress=timeline
            )
        end = time.time()
    mine = [(t, n) for t, n in starts.started if n.startswith(f"arena-{prefix}-")]
    roles = [(t, "baseline" if "-baseline-" in n else "challenger") for t, n in mine]
    return reports, split_time(timeline.events, roles, end), [n for _, n in mine]


class _SandboxStarts(contextlib.AbstractContextManager["_SandboxStarts"]):
    """When and which sandboxes started while it is open, from dockerd's live event stream.

    Live, not queried afterwards: dockerd keeps only its last 256 events, and a long round on a
    busy engine outlives them.
    """

    def __init__(self, client: docker.DockerClient) -> None:
        self.started: list[tuple[float, str]] = []
        self._stream = client.events(
            filters={"type": "container", "event": "start", "label": LABEL}, decode=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends in an error when closed
            for event in self._stream:
                name = event["Actor"]["Attributes"].get("name", "")
                self.started.append((event["timeNano"] / 1e9, name))

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
    console = Console(width=max(Console().width, 110))  # the table's 11 columns, in a log too
    client = docker.from_env()
    tag = f"bench{os.getpid()}"
    pool = [built_image(IMAGES[i % len(IMAGES)]) for i in range(max(options.sizes))]

    sizes, splits = [], []
    for n in options.sizes:
        by_order = {}
        for order in ORDERS:
            console.print(f"{n} challenger(s), {'one round' if order == 'round' else 'old order'}")
            reports, split, started = _run(client, order, pool[:n], seed, f"{tag}-{order}{n}")
            splits.append(split)
            by_order[order] = {
                "wall_s": split.wall_s,
                "per_challenger_s": split.wall_s / n,
                "baseline_starts": sum(1 for name in started if "-baseline-" in name),
                "split": {**msgspec.to_builtins(split), "overhead_s": split.overhead_s},
                "verdicts": [r.verdict for r in reports],
                "reasons": [r.reason for r in reports],
                "scores": [r.score for r in reports],
            }
        sizes.append({"challengers": n, "images": pool[:n], **by_order})

    table = Table(
        title=f"evaluator seconds, profile local, seed {seed[:18]}...",
        caption="start-ups to gate: seconds per challenger; B starts: baseline start-ups",
    )
    for column in (
        "N",
        "order",
        "wall",
        "per ch",
        "B starts",
        "start-ups",
        "measuring",
        "gate",
        "overhead",
        "speed-up",
        "verdicts",
    ):
        table.add_column(column, justify="right")
    for size in sizes:
        n, old = size["challengers"], size["old"]
        for order in ORDERS:
            run = size[order]
            part = run["split"]
            starts = sum(part["baseline_start_s"]) + sum(part["challenger_start_s"])
            table.add_row(
                str(n),
                order,
                f"{run['wall_s']:.0f}",
                f"{run['per_challenger_s']:.0f}",
                str(run["baseline_starts"]),
                f"{starts / n:.0f}",
                f"{sum(part['measure_s']) / n:.0f}",
                f"{part['gate_s'] / n:.1f}",
                f"{part['overhead_s'] / n:.1f}",
                f"{old['wall_s'] / run['wall_s']:.2f}x",
                "same" if run["verdicts"] == old["verdicts"] else "DIFFER",
            )
    console.print(table)

    local, h200, h200x8 = (get_profile(n) for n in ("local", "sn-h200", "sn-h200x8"))
    phases = measured_phases(splits)
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
