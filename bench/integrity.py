"""Every honest engine and every adversary through the real evaluation, in one round: one table.

    python -m bench.integrity [--seed HEX]     (needs dockerd, the registry and .cache/images.json)

One ``harness.eval.evaluate_round`` on the ``local`` profile, the baseline kept up and measured
between challengers. For each image: verdict, reason, score, noise, and whether the crown rule
would crown it over no king (``rules.crown.decide``). Honest engines must pass; the baseline
itself and the reference miner must score within the noise; no adversary may be crowned.
Prints a rich table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import secrets
import time

import docker
from rich.console import Console
from rich.table import Table

from bench.results import write_result
from harness.eval import EvalReport, evaluate_round
from harness.profile import built_image, get_profile
from harness.runner import sigterm_raises
from rules.crown import crowned_over_no_king

__all__ = [
    "IMAGES",
    "main",
]


# image -> what it is; honest engines first, then one adversary per exploit class.
IMAGES = {
    "baseline": "honest: the baseline itself (A/A check)",
    "miner-ref": "honest: the reference miner (Ray Serve + vLLM)",
    "miner-fast": "honest: compiled and batching",
    "adv-replay": "replays remembered answers",
    "adv-stream-one": "streams one answer, buffers the rest",
    "cheater": "garbage after a correct prefix",
    "adv-organic": "honest only with validator-like requests",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", default="", help="round seed (a block hash); random if unset")
    options = parser.parse_args()
    seed = options.seed or "0x" + secrets.token_hex(32)
    console = Console(width=max(Console().width, 130))
    profile = get_profile("local")
    names = list(IMAGES)
    started = time.monotonic()

    def landed(i: int, report: EvalReport) -> None:
        console.print(
            f"[{time.monotonic() - started:6.0f} s] {names[i]}: {report.verdict} "
            f"{report.reason} score {report.score:.4f} noise {report.noise:.4f}"
        )

    console.print(f"one round of {len(names)} challengers, seed {seed[:18]}...")
    with sigterm_raises():  # a stopped bench still removes its containers
        reports = evaluate_round(
            docker.from_env(), [built_image(n) for n in names], profile, seed, on_report=landed
        )
    wall = time.monotonic() - started

    table = Table(title=f"integrity round, profile local, {wall:.0f} s")
    for column in ("image", "verdict", "reason", "score", "noise", "crowned", "what it is"):
        table.add_column(column, justify="right" if column in ("score", "noise") else "left")
    rows = []
    for name, report in zip(names, reports, strict=True):
        crowned = crowned_over_no_king(
            score=report.score, passed=report.verdict == "pass", noise=report.noise
        )
        rows.append(
            {
                "image": name,
                "what": IMAGES[name],
                "verdict": report.verdict,
                "reason": report.reason,
                "detail": report.detail,
                "score": report.score,
                "noise": report.noise,
                "crowned": crowned,
                "seconds": report.seconds,
            }
        )
        table.add_row(
            name,
            report.verdict,
            report.reason,
            f"{report.score:.4f}",
            f"{report.noise:.4f}",
            "yes" if crowned else "no",
            IMAGES[name],
        )
    console.print(table)
    out = write_result("integrity", {"seed": seed, "wall_s": wall, "rows": rows})
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
