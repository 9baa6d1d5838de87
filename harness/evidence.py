"""An evaluation's evidence, kept as zstd Parquet files named by its eval id, and read back.

What the verdict and the score were computed from, so that anyone can re-judge an evaluation
later without a GPU or the servers (``arena replay``)::

    <eval_id>.requests.parquet   every request of the three measurements: arm, level, pass,
                                 prompt, token ids, logprobs, arrival times, client wait, ...
    <eval_id>.gate.parquet       the baseline's re-scoring of each challenger answer
                                 (detokenized text, token and argmax logprobs per position)
    <eval_id>.verdict.parquet    the gate's verdict and details, and the noise floor scored with
    <eval_id>.logs.parquet       the containers' bounded log tails, by role

:func:`write` returns each file's sha256 (what ``EvalFinished.evidence`` records), :func:`read`
checks them and rebuilds the :class:`Evidence`, and :func:`prune` applies the retention setting.
Files are written through DuckDB (already the event log's engine), so no Arrow is needed; any
Parquet reader, DuckDB's SQL included, can query them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from harness.gate import GateVerdict, Rescored
from harness.loadgen import RequestResult
from harness.measurement import LevelRun, Measurement
from harness.prompts import Prompt
from rules.errors import ArenaError

__all__ = [
    "ARMS",
    "DEFAULT_KEEP",
    "EVIDENCE_DIR",
    "Evidence",
    "EvidenceError",
    "KINDS",
    "prune",
    "read",
    "write",
]

# The folder beside an event log (or an `arena eval` JSON report) that holds the evidence.
EVIDENCE_DIR = "evidence"
ARMS = ("baseline_before", "challenger", "baseline_after")
KINDS = ("requests", "gate", "verdict", "logs")
# Retention: how many evals' evidence the validator keeps (the newest), unless its settings
# (validator.toml's evidence_keep) say otherwise.
DEFAULT_KEEP = 1000
_EVAL_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

_REQUEST_COLUMNS = {
    "arm": "VARCHAR",
    "url": "VARCHAR",
    "seed": "VARCHAR",
    "slot": "INTEGER",
    "model": "VARCHAR",
    "started_at": "DOUBLE",
    "run": "INTEGER",  # -1: the warm-up; else the pass's position in the measurement
    "concurrency": "INTEGER",
    "pass_index": "INTEGER",
    "pass_duration_s": "DOUBLE",
    "position": "INTEGER",
    "prompt_index": "INTEGER",
    "prompt_text": "VARCHAR",
    "prompt_output_tokens": "INTEGER",
    "success": "BOOLEAN",
    "error": "VARCHAR",
    "start": "DOUBLE",
    "ttft": "DOUBLE",
    "latency": "DOUBLE",
    "itl": "DOUBLE[]",
    "token_ids": "BIGINT[]",
    "logprobs": "DOUBLE[]",
    "arrivals": "DOUBLE[]",
    "text": "VARCHAR",
    "finish_reason": "VARCHAR",
    "client_wait": "DOUBLE",
}
_GATE_COLUMNS = {
    "concurrency": "INTEGER",
    "prompt_index": "INTEGER",
    "text": "VARCHAR",
    "token_logprobs": "DOUBLE[]",
    "argmax_logprobs": "DOUBLE[]",
}
_VERDICT_COLUMNS = {
    "passed": "BOOLEAN",
    "reason": "VARCHAR",
    "details": "VARCHAR",
    "max_argmax_gap": "DOUBLE",
    "max_reported_gap": "DOUBLE",
    "exact_match": "DOUBLE",
    "noise_floor": "DOUBLE",
}
_LOG_COLUMNS = {"role": "VARCHAR", "text": "VARCHAR"}


class EvidenceError(ArenaError):
    """Evidence is missing, altered (its sha256 differs from the logged one) or unreadable."""


class Evidence(msgspec.Struct, kw_only=True):
    eval_id: str
    # The arms that were measured (a challenger refused before it ran has none).
    measurements: dict[str, Measurement] = {}
    rescored: list[Rescored] = []
    verdict: GateVerdict | None = None  # None: judged before the gate (refused, crashed, ...)
    noise_floor: float = 0.0
    logs: dict[str, str] = {}


def write(directory: Path, evidence: Evidence) -> dict[str, str]:
    """Write ``evidence`` under ``directory``; return file name -> sha256 of its bytes."""
    _check_id(evidence.eval_id)
    directory.mkdir(parents=True, exist_ok=True)
    tables = {
        "requests": (_REQUEST_COLUMNS, list(_request_rows(evidence.measurements))),
        "gate": (_GATE_COLUMNS, [_gate_row(r) for r in evidence.rescored]),
        "verdict": (_VERDICT_COLUMNS, _verdict_rows(evidence)),
        "logs": (_LOG_COLUMNS, sorted(evidence.logs.items())),
    }
    digests = {}
    with duckdb.connect() as con:
        for kind, (columns, rows) in tables.items():
            path = directory / f"{evidence.eval_id}.{kind}.parquet"
            _write_table(con, path, columns, rows)
            digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def read(directory: Path, eval_id: str, digests: dict[str, str] | None = None) -> Evidence:
    """The evidence of ``eval_id``; with ``digests`` (as :func:`write` returned), checked first."""
    _check_id(eval_id)
    paths = {kind: directory / f"{eval_id}.{kind}.parquet" for kind in KINDS}
    missing = [p.name for p in paths.values() if not p.exists()]
    if missing:
        raise EvidenceError(
            f"no evidence {', '.join(missing)} in {directory}: it was never kept (an eval "
            "before evidence was recorded) or retention removed it"
        )
    for name, digest in (digests or {}).items():
        actual = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        if actual != digest:
            raise EvidenceError(
                f"{directory / name} has sha256 {actual}, the log recorded {digest}: the file "
                "was altered after the evaluation; it cannot be replayed"
            )
    with duckdb.connect() as con:
        requests = _read_table(con, paths["requests"], "arm, run, position")
        gate_rows = _read_table(con, paths["gate"], "rowid_")
        (verdict_row,) = _read_table(con, paths["verdict"], "1")
        logs = {row["role"]: row["text"] for row in _read_table(con, paths["logs"], "role")}
    verdict = None
    if verdict_row["reason"] is not None:
        fields = {k: v for k, v in verdict_row.items() if k != "noise_floor"}
        verdict = msgspec.convert(fields, GateVerdict)
    return Evidence(
        eval_id=eval_id,
        measurements=_measurements(requests),
        rescored=[msgspec.convert(row, Rescored) for row in gate_rows],
        verdict=verdict,
        noise_floor=verdict_row["noise_floor"],
        logs=logs,
    )


def prune(directory: Path, keep: int) -> list[str]:
    """Keep the evidence of the newest ``keep`` evals (by write time); return the ids removed."""
    if keep < 0:
        raise ValueError(f"keep must be 0 or more evals, not {keep}")
    newest: dict[str, float] = {}
    for path in directory.glob("*.parquet"):
        eval_id = path.name.split(".", 1)[0]
        newest[eval_id] = max(newest.get(eval_id, 0.0), path.stat().st_mtime)
    ordered = sorted(newest, key=lambda e: (newest[e], e), reverse=True)
    removed = ordered[keep:]
    for eval_id in removed:
        for kind in KINDS:
            (directory / f"{eval_id}.{kind}.parquet").unlink(missing_ok=True)
    return removed


def _check_id(eval_id: str) -> None:
    # Ids name files: nothing that could reach outside the directory.
    if not _EVAL_ID.match(eval_id) or eval_id.startswith("."):
        raise ValueError(f"eval id {eval_id!r} cannot name a file; use letters, digits, -_.")


def _request_rows(measurements: dict[str, Measurement]) -> Iterator[tuple]:
    for arm, m in measurements.items():
        header = (arm, m.url, m.seed, m.slot, m.model, m.started_at)
        warmup = [(-1, 0, 0, 0.0, n, r, None) for n, r in enumerate(m.warmup)]
        runs = [
            (k, run.concurrency, run.pass_index, run.duration_s, n, r, prompt)
            for k, run in enumerate(m.runs)
            for n, (prompt, r) in enumerate(zip(run.prompts, run.results, strict=True))
        ]
        for k, concurrency, pass_index, duration, n, r, prompt in warmup + runs:
            yield (
                *header,
                k,
                concurrency,
                pass_index,
                duration,
                n,
                r.prompt_index,
                prompt.text if prompt else None,
                prompt.output_tokens if prompt else None,
                r.success,
                r.error,
                r.start,
                r.ttft,
                r.latency,
                r.itl,
                r.token_ids,
                r.logprobs,
                r.arrivals,
                r.text,
                r.finish_reason,
                r.client_wait,
            )


def _gate_row(r: Rescored) -> tuple:
    return (r.concurrency, r.prompt_index, r.text, r.token_logprobs, r.argmax_logprobs)


def _verdict_rows(evidence: Evidence) -> list[tuple]:
    v = evidence.verdict
    if v is None:
        return [(None, None, None, None, None, None, evidence.noise_floor)]
    return [
        (
            v.passed,
            v.reason,
            v.details,
            v.max_argmax_gap,
            v.max_reported_gap,
            v.exact_match,
            evidence.noise_floor,
        )
    ]


def _write_table(
    con: duckdb.DuckDBPyConnection, path: Path, columns: dict[str, str], rows: list[tuple]
) -> None:
    con.execute("DROP TABLE IF EXISTS t")
    con.execute(
        "CREATE TEMP TABLE t (rowid_ INTEGER, "
        + ", ".join(f"{name} {kind}" for name, kind in columns.items())
        + ")"
    )
    if rows:
        marks = ", ".join("?" * (len(columns) + 1))
        con.executemany(f"INSERT INTO t VALUES ({marks})", [(n, *r) for n, r in enumerate(rows)])
    # Written beside, then renamed: a reader never sees half a file.
    partial = path.with_name(path.name + ".partial")
    con.execute(
        f"COPY (SELECT * FROM t ORDER BY rowid_) TO {_quoted(partial)} "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    os.replace(partial, path)


def _read_table(con: duckdb.DuckDBPyConnection, path: Path, order: str) -> list[dict[str, Any]]:
    cursor = con.execute(f"SELECT * EXCLUDE (rowid_) FROM read_parquet({_quoted(path)}) "
                         f"ORDER BY {order}")  # fmt: skip
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _measurements(rows: list[dict[str, Any]]) -> dict[str, Measurement]:
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(row)
    measurements = {}
    for arm in ARMS:
        arm_rows = by_arm.get(arm)
        if not arm_rows:
            continue
        first = arm_rows[0]
        runs: dict[int, list[dict[str, Any]]] = {}
        for row in arm_rows:
            runs.setdefault(row["run"], []).append(row)
        warmup = [_result(r) for r in runs.pop(-1, [])]
        measurements[arm] = Measurement(
            url=first["url"],
            seed=first["seed"],
            slot=first["slot"],
            model=first["model"],
            started_at=first["started_at"],
            warmup=warmup,
            # Metrics are recomputed from the requests, as when they were measured.
            runs=[
                LevelRun.of(
                    run_rows[0]["concurrency"],
                    [
                        Prompt(r["prompt_index"], r["prompt_text"], r["prompt_output_tokens"])
                        for r in run_rows
                    ],
                    [_result(r) for r in run_rows],
                    run_rows[0]["pass_duration_s"],
                    run_rows[0]["pass_index"],
                )
                for _, run_rows in sorted(runs.items())
            ],
        )
    return measurements


def _result(row: dict[str, Any]) -> RequestResult:
    fields = RequestResult.__struct_fields__
    return msgspec.convert({k: row[k] for k in fields}, RequestResult)
