"""Wall time of one local validator round, phase by phase, and the validator's own share of it.

    python -m bench.round            (needs dockerd, the registry and .cache/images.json)

One round on real parts: a fresh chopsticks chain and subnet, the validator's actors on a local
Ray cluster, the faster honest miner committing its image, one real evaluation, the crown and
weights on chain. Phases come from the event log's commit times (``ts``) and the eval's own
laps, measured between consecutive milestones:

  chain detection   commit included on chain -> SubmissionCommitted logged
  queue             SubmissionCommitted -> EvalQueued (includes the round settle time)
  dispatch          EvalQueued -> EvalStarted (an Evaluator actor is placed and started)
  baseline          EvalStarted -> BaselineMeasured(before): pull, baseline start-up, measure
  challenger+gate   -> BaselineMeasured(after): challenger start-up and measure, baseline
                    start-up, B' and the teacher-forced gate
  finish            -> EvalFinished (score, event)
  crown             -> RoundDecided
  weights           -> WeightsSet (extrinsic included)

Container work is baseline + challenger+gate; everything else is the validator's overhead.
Prints a rich table and writes JSON under bench/results/.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chain.commitment import commit_image
from cli.subnet import MINERS, LocalSubnetRun, Outcome
from events.recorded import Recorded
from events.types import (
    BaselineMeasured,
    EvalFinished,
    EvalQueued,
    EvalStarted,
    RoundDecided,
    SubmissionCommitted,
    WeightsSet,
)

RESULTS = Path(__file__).resolve().parent / "results"
CHALLENGER = ("faster honest", "miner-fast")
CONTAINER_PHASES = ("baseline", "challenger+gate")
TARGET_OVERHEAD = 0.10


def _first(records: list[Recorded], cls: type, **match: object) -> Recorded:
    for r in records:
        if isinstance(r.event, cls) and all(getattr(r.event, k) == v for k, v in match.items()):
            return r
    raise LookupError(f"no {cls.__name__} {match} in the log")


def phases(records: list[Recorded], included_at: datetime) -> dict[str, float]:
    """Seconds per phase from the logged milestones of a one-challenger round."""
    committed = _first(records, SubmissionCommitted)
    queued = _first(records, EvalQueued)
    eval_id = queued.event.eval_id
    marks = [
        ("chain detection", included_at),
        ("queue", committed.ts),
        ("dispatch", queued.ts),
        ("baseline", _first(records, EvalStarted, eval_id=eval_id).ts),
        ("challenger+gate", _first(records, BaselineMeasured, eval_id=eval_id, phase="before").ts),
        ("finish", _first(records, BaselineMeasured, eval_id=eval_id, phase="after").ts),
        ("crown", _first(records, EvalFinished, eval_id=eval_id).ts),
        ("weights", _first(records, RoundDecided).ts),
        ("", _first(records, WeightsSet, success=True).ts),
    ]
    # Each milestone closes the phase named by the previous one.
    return {name: (marks[i + 1][1] - at).total_seconds() for i, (name, at) in enumerate(marks[:-1])}


def main() -> int:
    console = Console()
    workdir = Path(f"/tmp/arena-bench-round-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    run = LocalSubnetRun(workdir, console)
    try:
        run.check_engine()
        run.load_images()
        run.start_chain()
        run.start_validator()
        who, image = CHALLENGER
        key = run.subnet.miners[[w for w, _ in MINERS].index(who)]

        result = commit_image(run.client, key, run.subnet.netuid, run.images[image])
        included_at = datetime.now(UTC)
        run.say(f"{who} miner committed {image} in block {result.block}")

        def done(events: list) -> Outcome | None:
            if any(isinstance(e, WeightsSet) and e.success for e in events):
                return Outcome(True, "round complete")
            return None

        outcome = run.watch(done, 1800)
        if not outcome.ok:
            console.print(f"[red]{outcome.reason}[/]")
            return 1
        records = list(run.log.replay(0))
    finally:
        run.close()

    secs = phases(records, included_at)
    total = sum(secs.values())
    container = sum(secs[p] for p in CONTAINER_PHASES)
    overhead = total - container
    table = Table(title="one local round")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    table.add_column("whose")
    for name, s in secs.items():
        whose = "containers" if name in CONTAINER_PHASES else "validator"
        table.add_row(name, f"{s:.2f}", f"{s / total:.1%}", whose)
    table.add_row("total", f"{total:.2f}", "100%", "")
    table.add_row("validator overhead", f"{overhead:.2f}", f"{overhead / total:.1%}", "")
    console.print(table)
    verdict = "meets" if overhead / total < TARGET_OVERHEAD else "misses"
    console.print(f"validator overhead {overhead / total:.1%}: {verdict} the < 10% target")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"round-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "phases_s": secs,
                "total_s": total,
                "container_s": container,
                "overhead_s": overhead,
                "overhead_share": overhead / total,
                "machine": platform.node(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
