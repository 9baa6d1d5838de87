"""Benchmark: Arena's DuckDB event log against ``eventsourcing`` with its SQLite store.

Both do the same work in the same run, in-process, on files in a fresh temporary folder:

- batched append: ``--events`` EvalFinished events in batches of 1,000, one transaction each;
- single append: ``--singles`` events, one transaction each, after the batched ones;
- replay: read back every event (1,000,000 by default) decoded into event objects;
- history query: best score and evaluation count per hotkey over all events (SQL on each
  store; eventsourcing keeps events as JSON blobs, so SQLite's ``json_extract`` reads them).

Appends time the append calls only: each side gets its event objects (Arena's structs,
eventsourcing's domain events) built outside the timing, so the rows measure the stores, and
serialising the events is part of each side's append.

Durability is equal: every acknowledged append is fsync'd, by DuckDB on commit of its WAL or
by Arena's journal (one-event appends), and by SQLite, which eventsourcing runs in WAL mode
with Python's default ``synchronous=FULL``. Each row reports wall-clock rates and rates
per CPU second of this process (``time.process_time``): on a shared, loaded machine the CPU
rates say how much work each side needs. Prints a table and writes
``bench/results/event_log.json``. Run: ``python -m bench.event_log``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from events.log import EventLog
from events.types import EvalFinished

__all__ = [
    "RESULTS",
    "BATCH",
    "HOTKEYS",
    "TARGETS",
    "DUCKDB_HISTORY",
    "SQLITE_HISTORY",
    "arena_event",
    "Row",
    "Clock",
    "batches",
    "ArenaStore",
    "EventsourcingStore",
    "run",
    "report",
    "main",
]


RESULTS = Path(__file__).resolve().parent / "results" / "event_log.json"
BATCH = 1_000
HOTKEYS = 256
TARGETS = {"batched_append_events_s": 100_000, "replay_1m_s": 2.0}
DUCKDB_HISTORY = """
SELECT hotkey, max(score) AS best, count(*) AS evals
FROM evaluations GROUP BY hotkey ORDER BY best DESC, hotkey LIMIT 10
"""
SQLITE_HISTORY = """
SELECT json_extract(state, '$.hotkey') AS hotkey, max(json_extract(state, '$.score')) AS best,
       count(*) AS evals
FROM stored_events WHERE topic = ? GROUP BY 1 ORDER BY best DESC, hotkey LIMIT 10
"""


def arena_event(i: int) -> EvalFinished:
    return EvalFinished(
        eval_id=f"ev-{i}",
        hotkey=f"5Hotkey{i % HOTKEYS:04d}",
        digest=f"sha256:{i:064x}",
        verdict="pass" if i % 7 else "fail",
        reason="",
        score=(i * 7919 % 10_007) / 10_007,
        noise=0.01,
        metrics={"ttft_ms_p50": 30.0 + i % 50, "output_tok_s": 100.0 + i % 20},
    )


@dataclass(frozen=True)
class Row:
    name: str
    work: str
    arena_s: float
    es_s: float
    count: int
    arena_cpu_s: float
    es_cpu_s: float


class Clock:
    """Wall and CPU seconds (this process, all threads) summed over the timed sections.

    CPU seconds tell how much work a side did even when other processes share the cores.
    """

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        cpu, start = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.wall_s += time.perf_counter() - start
            self.cpu_s += time.process_time() - cpu


def batches(first: int, count: int, size: int) -> Iterator[range]:
    for start in range(first, first + count, size):
        yield range(start, min(start + size, first + count))


class ArenaStore:
    def __init__(self, folder: Path) -> None:
        self.log = EventLog(folder / "arena.duckdb")

    def append(self, first: int, count: int, size: int, clock: Clock) -> None:
        for batch in batches(first, count, size):
            events = [arena_event(i) for i in batch]
            with clock.running():
                self.log.append(events)

    def replay(self, clock: Clock) -> int:
        with clock.running():
            return sum(1 for _ in self.log.replay())

    def history(self, clock: Clock) -> list[tuple[Any, ...]]:
        with clock.running():
            return self.log.sql(DUCKDB_HISTORY)[1]


class EventsourcingStore:
    """eventsourcing 9.5's SQLite application recorder and mapper, used as its docs show."""

    def __init__(self, folder: Path) -> None:
        from eventsourcing.domain import DomainEvent
        from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, UUIDAsHex
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        @dataclass(frozen=True)
        class Evaluated(DomainEvent):
            eval_id: str
            hotkey: str
            digest: str
            verdict: str
            reason: str
            score: float
            noise: float
            metrics: dict[str, float]

        transcoder = JSONTranscoder()
        transcoder.register(UUIDAsHex())
        transcoder.register(DatetimeAsISO())
        self.mapper = Mapper(transcoder=transcoder)
        self.recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(folder / "es.sqlite")))
        self.recorder.create_table()
        self.event_class = Evaluated
        self.topic = f"{Evaluated.__module__}:{Evaluated.__qualname__}"
        # The same idempotency key as Arena's: one "aggregate" per eval id, at version 1.
        self._ids = uuid.uuid5(uuid.NAMESPACE_URL, "arena")

    def _domain_event(self, i: int) -> Any:
        e = arena_event(i)
        return self.event_class(
            originator_id=uuid.uuid5(self._ids, e.key),
            originator_version=1,
            timestamp=self.event_class.create_timestamp(),
            eval_id=e.eval_id,
            hotkey=e.hotkey,
            digest=e.digest,
            verdict=e.verdict,
            reason=e.reason,
            score=e.score,
            noise=e.noise,
            metrics=e.metrics,
        )

    def append(self, first: int, count: int, size: int, clock: Clock) -> None:
        for batch in batches(first, count, size):
            events = [self._domain_event(i) for i in batch]
            with clock.running():
                self.recorder.insert_events([self.mapper.to_stored_event(e) for e in events])

    def replay(self, clock: Clock) -> int:
        count, start = 0, 1
        with clock.running():
            while notifications := self.recorder.select_notifications(start, 10_000):
                for notification in notifications:
                    self.mapper.to_domain_event(notification)
                count += len(notifications)
                start = notifications[-1].id + 1
        return count

    def history(self, clock: Clock) -> list[tuple[Any, ...]]:
        with clock.running(), self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(SQLITE_HISTORY, (self.topic,))
            return [tuple(row) for row in cursor.fetchall()]


def run(events: int, singles: int, folder: Path, console: Console) -> list[Row]:
    arena, es = ArenaStore(folder), EventsourcingStore(folder)
    rows: list[Row] = []

    def measure(name: str, work: str, count: int, a: Callable, e: Callable) -> tuple[Any, Any]:
        console.log(f"{name}: arena ...")
        arena_clock, es_clock = Clock(), Clock()
        arena_result = a(arena_clock)
        console.log(f"{name}: eventsourcing ...")
        es_result = e(es_clock)
        rows.append(
            Row(
                name,
                work,
                arena_clock.wall_s,
                es_clock.wall_s,
                count,
                arena_clock.cpu_s,
                es_clock.cpu_s,
            )
        )
        return arena_result, es_result

    measure(
        "batched append",
        f"{events:,} events, {BATCH:,} per transaction",
        events,
        lambda clock: arena.append(0, events, BATCH, clock),
        lambda clock: es.append(0, events, BATCH, clock),
    )
    measure(
        "single append",
        f"{singles:,} events, one per transaction",
        singles,
        lambda clock: arena.append(events, singles, 1, clock),
        lambda clock: es.append(events, singles, 1, clock),
    )
    total = events + singles
    counts = measure(
        "replay",
        f"all {total:,} events, decoded",
        total,
        arena.replay,
        es.replay,
    )
    assert counts == (total, total), f"replayed {counts}, expected {total} each"
    answers = measure(
        "history query",
        f"best score and count per hotkey over {total:,} events",
        1,
        arena.history,
        es.history,
    )
    assert answers[0] == answers[1], f"history answers differ: {answers}"
    arena.log.close()
    return rows


def _show(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} ev/s" if count > 1 else f"{seconds * 1e3:,.1f} ms"


def report(rows: list[Row], events: int, load_at_start: float, console: Console) -> dict[str, Any]:
    table = Table(title="Event log: Arena (DuckDB) vs eventsourcing 9.5.6 (SQLite)")
    columns = (
        "work",
        "what",
        "arena",
        "eventsourcing",
        "arena speed-up",
        "arena per CPU-s",
        "eventsourcing per CPU-s",
        "speed-up in CPU time",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("work", "what") else "right")
    results: dict[str, Any] = {"rows": []}
    for row in rows:
        per_s = row.count > 1
        speedup = row.es_s / row.arena_s
        table.add_row(
            row.name,
            row.work,
            _show(row.count, row.arena_s),
            _show(row.count, row.es_s),
            f"{speedup:.1f}x",
            _show(row.count, row.arena_cpu_s),
            _show(row.count, row.es_cpu_s),
            f"{row.es_cpu_s / row.arena_cpu_s:.1f}x",
        )
        results["rows"].append(
            {
                "name": row.name,
                "work": row.work,
                "count": row.count,
                "arena_s": round(row.arena_s, 4),
                "eventsourcing_s": round(row.es_s, 4),
                "arena_cpu_s": round(row.arena_cpu_s, 4),
                "eventsourcing_cpu_s": round(row.es_cpu_s, 4),
                "arena_events_per_s": round(row.count / row.arena_s) if per_s else None,
                "eventsourcing_events_per_s": round(row.count / row.es_s) if per_s else None,
                "arena_events_per_cpu_s": round(row.count / row.arena_cpu_s) if per_s else None,
                "eventsourcing_events_per_cpu_s": (
                    round(row.count / row.es_cpu_s) if per_s else None
                ),
                "arena_ahead": row.arena_s < row.es_s,
                "arena_ahead_in_cpu_time": row.arena_cpu_s < row.es_cpu_s,
            }
        )
    console.print(table)
    by_name = {row.name: row for row in rows}
    batched = by_name["batched append"]
    replay = by_name["replay"]
    replay_1m_s = replay.arena_s * 1_000_000 / replay.count
    replay_1m_cpu_s = replay.arena_cpu_s * 1_000_000 / replay.count
    results["targets"] = {
        "batched_append_events_s": round(batched.count / batched.arena_s),
        "batched_append_target": TARGETS["batched_append_events_s"],
        "batched_append_events_per_cpu_s": round(batched.count / batched.arena_cpu_s),
        "replay_1m_s": round(replay_1m_s, 3),
        "replay_1m_cpu_s": round(replay_1m_cpu_s, 3),
        "replay_1m_target_s": TARGETS["replay_1m_s"],
        "ahead_on_every_row": all(r.arena_s < r.es_s for r in rows),
        "ahead_on_every_row_in_cpu_time": all(r.arena_cpu_s < r.es_cpu_s for r in rows),
    }
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_avg_1m_at_start": load_at_start,
        "load_avg_1m_at_end": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    results["events"] = events
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to append in batches")
    parser.add_argument("--singles", type=int, default=2_000, help="events to append one by one")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    console = Console()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="arena-bench-") as folder:
        rows = run(args.events, args.singles, Path(folder), console)
    results = report(rows, args.events, load_at_start, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
