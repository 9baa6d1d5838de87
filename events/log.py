"""The event log: one DuckDB file, one writer, append-only.

Table ``events(seq, ts, type, key, version, payload)``: ``seq`` numbers events 1, 2, 3, ...
in commit order with no gaps; ``ts`` is the commit time of the batch; ``payload`` is the
event's msgspec JSON (``payload->>'score'`` reads a field in SQL). ``(type, key)`` is unique,
so appending an event that is already stored is a no-op that returns the stored ``seq``:
a retried append after a lost reply cannot duplicate a fact.

A batch is one transaction: after :meth:`EventLog.append` returns, every event of the batch
is in the write-ahead log and survives ``kill -9``; if it raises, none of them is stored.

Errors::

    EventLogError
    ├── LogLockedError       another process holds the file (DuckDB allows one)
    └── ReadOnlyQueryError   EventLog.sql was given something other than one SELECT
    events.types.EventDecodeError   a stored event is of an unknown type or newer version
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Union

import duckdb
import msgspec

from events.projections import create_views
from events.recorded import Recorded
from events.types import Event, EventDecodeError, encode, event_types

__all__ = ["EventLog", "EventLogError", "LogLockedError", "ReadOnlyQueryError", "type_name"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    type VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    version INT NOT NULL,
    payload JSON NOT NULL,
    UNIQUE (type, key)
);
CREATE TABLE IF NOT EXISTS cursors (name VARCHAR PRIMARY KEY, seq BIGINT NOT NULL);
"""

# Columns travel as one string each, split inside DuckDB: converting 1,000-element Python lists
# to DuckDB LIST parameters costs several times more. The separator is the ASCII record
# separator, which msgspec JSON always escapes and which append() refuses inside type and key.
_SEP = "\x1e"
_INSERT = f"""
INSERT INTO events
SELECT $first + unnest(range($n)), now(),
       unnest(string_split($types, chr({ord(_SEP)}))),
       unnest(string_split($keys, chr({ord(_SEP)}))),
       unnest(string_split($versions, chr({ord(_SEP)})))::INT,
       unnest(string_split($payloads, chr({ord(_SEP)})))
"""
_INSERT_ONE = "INSERT INTO events VALUES (?, now(), ?, ?, ?, ?)"
# `seq` has no index: the one writer numbers events itself, and an index on it costs CPU on
# every append and at every checkpoint. Checkpoints cost more as the log grows (measured: with
# DuckDB's default of 16 MB of WAL, 1,000-event batches cost ~1.5x more CPU by 600k events);
# 64 MB between them keeps that down, while reopening after a crash replays at most 64 MB.
_CHECKPOINT_THRESHOLD = "64MB"
_EXISTING = f"""
SELECT e.type, e.key, e.seq FROM events e
JOIN (SELECT unnest(string_split($types, chr({ord(_SEP)}))) AS type,
             unnest(string_split($keys, chr({ord(_SEP)}))) AS key) b
  ON e.type = b.type AND e.key = b.key
"""
_REPLAY_CHUNK = 20_000
_READ_ONLY_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EventLogError(Exception):
    """Root of the event log's own errors."""


class LogLockedError(EventLogError):
    """Raised when another process holds the log file; DuckDB allows one process per file."""


class ReadOnlyQueryError(EventLogError, ValueError):
    """Raised when :meth:`EventLog.sql` is given anything but one read-only statement."""


def type_name(cls: type[Event]) -> str:
    """The tag an event class is stored under (the ``type`` column)."""
    return cls.__struct_config__.tag  # type: ignore[return-value]


@functools.cache
def _payload_decoder(types: tuple[type[Event], ...]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(Union[types])  # noqa: UP007 - a runtime union over classes


class EventLog:
    """The append-only event log in one DuckDB file. Not thread-safe: one owner at a time.

    Open it in exactly one process (the ``EventLogActor``); everything else goes through it.
    """

    def __init__(self, path: str | Path, *, lock_wait_s: float = 0.0) -> None:
        """Open or create the log at ``path``.

        ``lock_wait_s`` is how long to keep retrying while another process still holds the
        file, e.g. a killed predecessor whose lock the kernel has not released yet.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = _connect(self.path, lock_wait_s)
        self._con.execute(_SCHEMA)
        create_views(self._con)
        # Parsed once and reused: appends skip parsing their statement.
        self._insert_one, self._insert_many = (
            self._con.extract_statements(query)[0] for query in (_INSERT_ONE, _INSERT)
        )
        self._last_seq: int = self._con.execute(
            "SELECT coalesce(max(seq), 0) FROM events"
        ).fetchall()[0][0]

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def last_seq(self) -> int:
        """The ``seq`` of the newest stored event, 0 for an empty log."""
        return self._last_seq

    def append(self, events: Sequence[Event]) -> list[int]:
        """Store ``events`` in one transaction; return each event's ``seq``, in input order.

        An event whose ``(type, key)`` is already stored, or repeated earlier in the batch,
        is not stored again: its entry in the result is the ``seq`` stored first.
        """
        if not events:
            return []
        index: dict[tuple[str, str], int] = {}  # (type, key) -> position among new rows
        positions: list[int] = []
        rows: list[tuple[str, str, str, str]] = []
        for event in events:
            type_key = (type_name(type(event)), event.key)
            pos = index.get(type_key)
            if pos is None:
                if _SEP in type_key[1]:
                    raise ValueError(
                        f"{type_key[0]} key {type_key[1]!r} contains the ASCII record separator "
                        "(0x1e), which the log reserves; choose keys without control characters"
                    )
                pos = index[type_key] = len(rows)
                rows.append((*type_key, str(event.v), encode(event).decode()))
            positions.append(pos)
        try:
            seqs = self._insert(rows)
        except duckdb.ConstraintException:
            # Some events are stored already (a retried append): keep their seqs, add the rest.
            seqs = self._insert_missing(rows)
        return [seqs[pos] for pos in positions]

    def _insert(self, rows: list[tuple[str, str, str, str]]) -> list[int]:
        # One INSERT statement is one transaction (autocommit): atomic, and cheaper than
        # BEGIN/INSERT/COMMIT round trips, which doubled the cost of single appends.
        first = self._last_seq + 1
        if len(rows) == 1:
            type_, key, version, payload = rows[0]
            # Positional parameters: binding them costs less than named ones.
            params = [first, type_, key, int(version), payload]
            self._con.execute(self._insert_one, params).fetchall()
        else:
            types, keys, versions, payloads = (_SEP.join(col) for col in zip(*rows, strict=True))
            named: dict[str, Any] = {
                "first": first,
                "n": len(rows),
                "types": types,
                "keys": keys,
                "versions": versions,
                "payloads": payloads,
            }
            self._con.execute(self._insert_many, named).fetchall()
        self._last_seq = first + len(rows) - 1
        return list(range(first, first + len(rows)))

    def _insert_missing(self, rows: list[tuple[str, str, str, str]]) -> list[int]:
        stored = {
            (t, k): seq
            for t, k, seq in self._con.execute(
                _EXISTING,
                {"types": _SEP.join(r[0] for r in rows), "keys": _SEP.join(r[1] for r in rows)},
            ).fetchall()
        }
        missing = [row for row in rows if (row[0], row[1]) not in stored]
        new = iter(self._insert(missing) if missing else [])
        return [stored.get((row[0], row[1])) or next(new) for row in rows]

    def replay(
        self, from_seq: int = 0, types: Iterable[str] | None = None, limit: int | None = None
    ) -> Iterator[Recorded]:
        """Stored events with ``seq > from_seq`` in ``seq`` order, optionally only ``types``.

        Streams in chunks, so replaying millions of events holds one chunk in memory. Events
        appended while iterating are included up to the ``seq`` that was last when it started.
        Raises :class:`EventDecodeError`, naming the ``seq``, on an event this code cannot read.
        """
        end = self._last_seq
        type_list = sorted(set(types)) if types is not None else None
        query = "SELECT seq, epoch_us(ts), payload FROM events WHERE seq > $lo AND seq <= $hi"
        if type_list is not None:
            query += " AND list_contains($types, type)"
        query += " ORDER BY seq"
        decode = _payload_decoder(event_types()).decode
        remaining = limit if limit is not None else end
        lo = from_seq
        while lo < end and remaining > 0:
            hi = min(lo + _REPLAY_CHUNK, end)
            params: dict[str, Any] = {"lo": lo, "hi": hi}
            if type_list is not None:
                params["types"] = type_list
            rows = self._con.execute(query, params).fetchall()
            yield from self._decode_rows(rows[:remaining], decode)
            remaining -= min(len(rows), remaining)
            lo = hi

    def _decode_rows(self, rows: list[tuple[int, int, str]], decode: Any) -> Iterator[Recorded]:
        seq, last_us, ts = 0, None, _EPOCH
        try:
            for seq, ts_us, payload in rows:
                if ts_us != last_us:  # a batch shares one commit time: convert it once
                    last_us, ts = ts_us, _EPOCH + timedelta(microseconds=ts_us)
                event = decode(payload)
                if event.v > event.VERSION:
                    raise EventDecodeError(
                        f"event seq {seq} in {self.path}: {type(event).__name__} v{event.v} is "
                        f"newer than this code understands (v{event.VERSION}); upgrade arena"
                    )
                yield Recorded(seq, ts, event)
        except msgspec.DecodeError as exc:
            raise EventDecodeError(
                f"event seq {seq} in {self.path} is not a known event: {exc}; "
                "upgrade arena or add the event type before reading this log"
            ) from exc

    def sql(
        self, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only statement (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN).

        Returns ``(column names, rows)``. Anything else (INSERT, DROP, ATTACH, COPY, PRAGMA,
        SET, several statements) raises :class:`ReadOnlyQueryError` before it runs; the query
        then runs in a read-only transaction on a connection with file access disabled.
        """
        try:
            statements = self._con.extract_statements(query)
        except duckdb.ParserException as exc:
            raise ReadOnlyQueryError(f"cannot parse query: {exc}") from exc
        if len(statements) != 1:
            raise ReadOnlyQueryError(
                f"expected exactly one statement, got {len(statements)}; run them one at a time"
            )
        kind = statements[0].type
        if kind not in _READ_ONLY_TYPES:
            raise ReadOnlyQueryError(
                f"only read-only queries (SELECT, WITH, DESCRIBE, SHOW) may run on the event log; "
                f"got {kind.name}"
            )
        cursor = self._con.cursor()
        try:
            cursor.execute("BEGIN TRANSACTION READ ONLY")
            try:
                cursor.execute(query, params)
                columns = [d[0] for d in cursor.description or []]
                rows = cursor.fetchall()
            finally:
                cursor.execute("ROLLBACK")
        finally:
            cursor.close()
        return columns, rows

    def ack(self, name: str, seq: int) -> None:
        """Persist that subscriber ``name`` has handled every event up to ``seq``."""
        self._con.execute(
            "INSERT INTO cursors VALUES ($name, $seq) "
            "ON CONFLICT (name) DO UPDATE SET seq = greatest(cursors.seq, excluded.seq)",
            {"name": name, "seq": seq},
        ).fetchall()

    def cursor(self, name: str) -> int:
        """The last ``seq`` subscriber ``name`` acknowledged, 0 if it never did."""
        rows = self._con.execute(
            "SELECT seq FROM cursors WHERE name = $name", {"name": name}
        ).fetchall()
        return rows[0][0] if rows else 0


def _connect(path: Path, lock_wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            # No file access beyond the log itself: `arena sql` cannot read or write other files.
            return duckdb.connect(
                str(path),
                config={
                    "enable_external_access": False,
                    "checkpoint_threshold": _CHECKPOINT_THRESHOLD,
                },
            )
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise LogLockedError(
                    f"{path} is held by another process ({exc}). DuckDB allows one process per "
                    "file: go through the running EventLogActor (set RAY_ADDRESS), or stop it"
                ) from exc
            time.sleep(0.1)
