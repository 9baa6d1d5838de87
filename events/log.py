"""The event log: one DuckDB file, one writer, append-only.

Table ``events(seq, ts, type, key, version, payload)``: ``seq`` numbers events 1, 2, 3, ...
in commit order with no gaps; ``ts`` is the commit time of the event's batch; ``payload`` is
the event's msgspec JSON (``payload->>'score'`` reads a field in SQL).
``(type, key)`` is unique, so appending an event that is already stored is a no-op that
returns the stored ``seq``: a retried append after a lost reply cannot duplicate a fact.
The one writer keeps it unique, not a DuckDB index (which cost a third of every batched
append): a :class:`~events.journal.KeyFilter` over every stored pair, built when the log
opens, proves most events new; only a possible repeat is looked up in DuckDB.

A batch is one transaction: after :meth:`EventLog.append` returns, every event of the batch
survives ``kill -9``; if it raises, none of them is stored. A batch of several events is one
DuckDB transaction. A batch of one event is cheaper in the journal (``<file>.journal``, see
:mod:`events.journal`): written and fsync'd there, then folded into DuckDB with others in one
transaction before any other write, before every read (``replay``, ``sql``), on close, and on
open after a crash. So every read sees every acknowledged event.

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
import numpy as np

from events.errors import EventLogError
from events.journal import Journal, JournalRow, KeyFilter, pair_hashes
from events.projections import create_views
from events.recorded import Recorded
from events.types import Event, EventDecodeError, encode, event_types

__all__ = ["EventLog", "EventLogError", "LogLockedError", "ReadOnlyQueryError", "type_name"]

# `payload` is VARCHAR, as the JSON type would only re-validate what msgspec wrote (~15% of a
# batched append), and zstd-compressed: DuckDB's default string compression costs twice the
# CPU at each checkpoint and makes a file half again as large.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    type VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    version INT NOT NULL,
    payload VARCHAR NOT NULL USING COMPRESSION zstd
);
CREATE TABLE IF NOT EXISTS cursors (name VARCHAR PRIMARY KEY, seq BIGINT NOT NULL);
"""

# Columns travel as one string each, split inside DuckDB: converting 1,000-element Python lists
# to DuckDB LIST parameters costs several times more. The separator is the ASCII record
# separator, which msgspec JSON always escapes and which append() refuses inside type and key.
_SEP = "\x1e"
_SEP_BYTES = _SEP.encode()
_INSERT = f"""
INSERT INTO events
SELECT $first + unnest(range($n)), now(),
       unnest(string_split($types, chr({ord(_SEP)}))),
       unnest(string_split($keys, chr({ord(_SEP)}))),
       unnest(string_split($versions, chr({ord(_SEP)})))::INT,
       unnest(string_split($payloads, chr({ord(_SEP)})))
"""
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
# DuckDB scans the table for this (its index serves the constraint only), so the key filter
# sends only likely retries here.
_SEQ_OF = "SELECT seq FROM events WHERE type = $1 AND key = $2"
# One-event appends wait in the journal until this many are there (or a read or another write
# comes): it bounds the journal, and so the work of opening after a crash.
_FOLD_AT = 1_000
_REPLAY_CHUNK = 20_000
_READ_ONLY_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LogLockedError(EventLogError):
    """Raised when another process holds the log file; DuckDB allows one process per file."""


class ReadOnlyQueryError(EventLogError, ValueError):
    """Raised when :meth:`EventLog.sql` is given anything but one read-only statement."""


def type_name(cls: type[Event]) -> str:
    """The tag an event class is stored under (the ``type`` column)."""
    return cls.__struct_config__.tag  # type: ignore[return-value]


_tag = functools.cache(type_name)  # appends look a class's tag up once per event


@functools.cache
def _payload_decoder(types: tuple[type[Event], ...]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(Union[types])  # noqa: UP007 - a runtime union over classes


class EventLog:
    """The append-only event log in one DuckDB file. Not thread-safe: one owner at a time.

    Open it in exactly one process (the ``EventLogActor``); everything else goes through it.
    """

    def __init__(self, path: str | Path, *, lock_wait_s: float = 0.0) -> None:
        """Open or create the log at ``path``, folding in what a crash left in its journal.

        ``lock_wait_s`` is how long to keep retrying while another process still holds the
        file, e.g. a killed predecessor whose lock the kernel has not released yet.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = _connect(self.path, lock_wait_s)
        self._con.execute(_SCHEMA)
        create_views(self._con)
        # Parsed once and reused: appends skip parsing their statement.
        self._insert_many = self._con.extract_statements(_INSERT)[0]
        self._last_seq: int = self._con.execute(
            "SELECT coalesce(max(seq), 0) FROM events"
        ).fetchall()[0][0]
        # Opened only now: DuckDB's lock on the file makes this process the journal's owner.
        self._journal = Journal(self.path.with_name(self.path.name + ".journal"))
        self._pending: list[JournalRow] = []  # journaled, not yet in DuckDB: seqs after its own
        self._pending_seqs: dict[tuple[str, str], int] = {}
        self._filter = KeyFilter()  # every (type, key) in DuckDB
        columns = self._con.execute("SELECT type, key FROM events").fetchnumpy()
        self._filter.add(
            pair_hashes(list(zip(columns["type"].tolist(), columns["key"].tolist(), strict=True)))
        )
        for row in self._journal.rows():
            if row[0] <= self._last_seq:
                continue  # folded before the crash, which came before the journal was cleared
            if row[0] != self._last_seq + 1:
                raise EventLogError(
                    f"{self._journal.path} continues at seq {row[0]}, but {self.path} ends at "
                    f"seq {self._last_seq}: the journal belongs to another log file. Delete it "
                    "only if the log file was deleted or replaced on purpose"
                )
            self._journaled(row)
        self._fold()
        self._journal.clear()  # rows folded before the crash, a torn line: none may stay

    def close(self) -> None:
        try:
            self._fold()  # not needed for durability: leaves a file plain DuckDB reads whole
        finally:
            self._journal.close()
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
        pairs = [(_tag(type(event)), event.key) for event in events]
        # Each pair's first position: later repeats are overwritten by earlier ones.
        first = dict(zip(reversed(pairs), range(len(pairs) - 1, -1, -1), strict=True))
        if len(first) == len(pairs):
            new, positions = list(events), None
        else:
            order = sorted(first.values())
            new = [events[at] for at in order]
            row_of = {pairs[at]: row for row, at in enumerate(order)}
            positions = [row_of[pair] for pair in pairs]
            pairs = [pairs[at] for at in order]
        for type_, key in pairs:
            if _SEP in key:
                raise ValueError(
                    f"{type_} key {key!r} contains the ASCII record separator (0x1e), which "
                    "the log reserves; choose keys without control characters"
                )
        if len(new) == 1:
            seqs = [self._append_one(*pairs[0], new[0])]
        else:
            self._fold()  # journaled events come first: they were acknowledged first
            hashed = pair_hashes(pairs)
            if self._filter.may_contain_any(hashed):
                # Some may be stored already (a retried append): keep their seqs, add the rest.
                seqs = self._insert_missing(pairs, new)
            else:
                seqs = self._insert(pairs, new)
            self._filter.add(hashed)
        return seqs if positions is None else [seqs[row] for row in positions]

    def _append_one(self, type_: str, key: str, event: Event) -> int:
        stored = self._stored_seq(type_, key)
        if stored is not None:
            return stored
        ts_us = time.time_ns() // 1000
        row = (self._last_seq + 1, ts_us, type_, key, event.v, encode(event).decode())
        self._journal.write(row)  # acknowledged once this returns
        self._journaled(row)
        if len(self._pending) >= _FOLD_AT:
            self._fold()
        return row[0]

    def _journaled(self, row: JournalRow) -> None:
        self._pending.append(row)
        self._pending_seqs[row[2], row[3]] = row[0]
        self._last_seq = row[0]

    def _stored_seq(self, type_: str, key: str) -> int | None:
        """The seq of ``(type_, key)`` if it is stored, journaled or in DuckDB."""
        seq = self._pending_seqs.get((type_, key))
        if seq is not None:
            return seq
        if not self._filter.may_contain_any(pair_hashes([(type_, key)])):
            return None
        rows = self._con.execute(_SEQ_OF, [type_, key]).fetchall()
        return rows[0][0] if rows else None

    def _fold(self) -> None:
        """Move journaled events into DuckDB in one transaction, then empty the journal."""
        if not self._pending:
            return
        appender = self._con.appender("events")
        appender.append_rows(
            (seq, _EPOCH + timedelta(microseconds=ts_us), type_, key, version, payload)
            for seq, ts_us, type_, key, version, payload in self._pending
        )
        appender.flush()
        self._filter.add(pair_hashes(list(self._pending_seqs)))
        # A crash here leaves the rows in both places; opening skips them by seq.
        self._journal.clear()
        self._pending.clear()
        self._pending_seqs.clear()

    def _insert(self, pairs: list[tuple[str, str]], events: list[Event]) -> list[int]:
        # One INSERT statement is one transaction (autocommit): atomic, and cheaper than
        # BEGIN/INSERT/COMMIT round trips.
        first = self._last_seq + 1
        types, keys = zip(*pairs, strict=True)
        named: dict[str, Any] = {
            "first": first,
            "n": len(events),
            "types": _SEP.join(types),
            "keys": _SEP.join(keys),
            "versions": _SEP.join([str(event.v) for event in events]),
            # One bytes join and one decode: cheaper than decoding each event's JSON.
            "payloads": _SEP_BYTES.join(map(encode, events)).decode(),
        }
        self._con.execute(self._insert_many, named).fetchall()
        self._last_seq = first + len(events) - 1
        return list(range(first, first + len(events)))

    def _insert_missing(self, pairs: list[tuple[str, str]], events: list[Event]) -> list[int]:
        types, keys = zip(*pairs, strict=True)
        named = {"types": _SEP.join(types), "keys": _SEP.join(keys)}
        stored = {(t, k): seq for t, k, seq in self._con.execute(_EXISTING, named).fetchall()}
        missing = [at for at, pair in enumerate(pairs) if pair not in stored]
        if not missing:
            return [stored[pair] for pair in pairs]
        added = self._insert([pairs[at] for at in missing], [events[at] for at in missing])
        seqs = [stored.get(pair, 0) for pair in pairs]
        for at, seq in zip(missing, added, strict=True):
            seqs[at] = seq
        return seqs

    def replay(
        self, from_seq: int = 0, types: Iterable[str] | None = None, limit: int | None = None
    ) -> Iterator[Recorded]:
        """Stored events with ``seq > from_seq`` in ``seq`` order, optionally only ``types``.

        Streams in chunks, so replaying millions of events holds one chunk in memory. Events
        appended while iterating are included up to the ``seq`` that was last when it started.
        Raises :class:`EventDecodeError`, naming the ``seq``, on an event this code cannot read.
        """
        self._fold()
        end = self._last_seq
        type_list = sorted(set(types)) if types is not None else None
        query = "SELECT seq, epoch_us(ts) AS ts_us, payload FROM events "
        query += "WHERE seq > $lo AND seq <= $hi"
        if type_list is not None:
            query += " AND list_contains($types, type)"
        decode = _payload_decoder(event_types()).decode
        remaining = limit if limit is not None else end
        lo = from_seq
        while lo < end and remaining > 0:
            hi = min(lo + _REPLAY_CHUNK, end)
            params: dict[str, Any] = {"lo": lo, "hi": hi}
            if type_list is not None:
                params["types"] = type_list
            # Columns as arrays, not rows as tuples: a third less work per event.
            columns = _in_seq_order(self._con.execute(query, params).fetchnumpy())
            count = min(len(columns["seq"]), remaining)
            rows = zip(
                *(columns[name][:count].tolist() for name in ("seq", "ts_us", "payload")),
                strict=True,
            )
            yield from self._decode_rows(rows, decode)
            remaining -= count
            lo = hi

    def _decode_rows(self, rows: Iterable[tuple[int, int, str]], decode: Any) -> Iterator[Recorded]:
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
        self._fold()
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


def _in_seq_order(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``columns`` sorted by ``seq``.

    Replay asks for no ORDER BY, which costs a tenth of its time: DuckDB returns rows in
    insertion order, and this class inserts in ``seq`` order. This checks that, and sorts a
    file written otherwise.
    """
    seqs = columns["seq"]
    if (seqs[1:] > seqs[:-1]).all():
        return columns
    order = seqs.argsort()
    return {name: column[order] for name, column in columns.items()}


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
