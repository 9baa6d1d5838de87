"""The journal: the event log's fast path for one-event appends.

A DuckDB transaction costs about 1 ms of CPU however small it is (binding, planning, WAL,
commit); one write and fsync to an append-only file costs about 0.05 ms. So the log writes a
one-event append to this file, and acknowledges it once the fsync returns; it folds the
journal into DuckDB in one transaction when it holds enough events, before any other write,
before every read, on close, and on open (after a crash).

To return the stored ``seq`` of a retried append without a DuckDB query per append, the log
keeps a :class:`KeyFilter` over every stored ``(type, key)``: a miss proves an event is new;
only a hit (a retry) costs a look-up in DuckDB, which scans the table for it. The log reads
every stored pair into it when it opens (about 0.3 s per million events).

File format: one line per event, ``<crc32 as 8 hex digits> <JSON array of the row>\\n``,
the row being ``[seq, ts_us, type, key, version, payload]``, then zeros. The first line that
is torn (no newline, wrong checksum, not a row) ends the journal: its write never returned, so
it was never acknowledged; emptying the journal zeroes it.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

__all__ = ["Journal", "JournalRow", "KeyFilter", "pair_hashes"]

# seq, commit time (µs since the epoch, UTC), type, key, version, payload (the event's JSON).
JournalRow = tuple[int, int, str, str, int, str]

_row_decoder = msgspec.json.Decoder(JournalRow)


# The file is kept at least this long, zero-filled past its rows: writing over blocks that are
# already on disk lets each fsync skip updating the file's size (a quarter less time).
_PREALLOCATED = 1 << 20


class Journal:
    """An fsync'd append-only file of rows. Not thread-safe; one owner (the log's writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if created:
            # The file's name must survive a crash too, not only its contents.
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        size = os.fstat(self._fd).st_size
        self._end = 0  # where the next row goes
        self._dirty = size  # bytes from the start that may not be zero
        if size < _PREALLOCATED:
            self._write_zeros(size, _PREALLOCATED - size)

    def close(self) -> None:
        os.close(self._fd)

    def rows(self) -> list[JournalRow]:
        """The rows written before, up to the first torn line; appends go after them."""
        with open(self.path, "rb") as file:
            data = file.read().rstrip(b"\0")
        self._dirty = len(data)
        lines = data.split(b"\n")[:-1]  # the last piece has no newline: torn
        rows, end = [], 0
        for line in lines:
            crc, _, body = line.partition(b" ")
            try:
                if int(crc, 16) != zlib.crc32(body):
                    break
                rows.append(_row_decoder.decode(body))
            except (ValueError, msgspec.DecodeError):
                break
            end += len(line) + 1
        self._end = end
        return rows

    def write(self, row: JournalRow) -> None:
        """Append ``row``; it is durable when this returns."""
        body = msgspec.json.encode(row)
        data = memoryview(b"%08x %s\n" % (zlib.crc32(body), body))
        while data:
            written = os.pwrite(self._fd, data, self._end)
            self._end += written
            data = data[written:]
        self._dirty = max(self._dirty, self._end)
        os.fdatasync(self._fd)

    def clear(self) -> None:
        """Empty the journal, once its rows are committed elsewhere."""
        self._write_zeros(0, self._dirty)
        self._end = self._dirty = 0

    def _write_zeros(self, start: int, length: int) -> None:
        os.pwrite(self._fd, bytes(length), start)
        os.fdatasync(self._fd)


# Hashes kept in a set until there are this many, then merged into the sorted array.
_RECENT_MAX = 1 << 16


def pair_hashes(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """The 64-bit hashes a :class:`KeyFilter` keeps, computed once per batch for both uses."""
    return np.fromiter(map(hash, pairs), dtype=np.int64, count=len(pairs))


class KeyFilter:
    """The ``(type, key)`` pairs added, as 64-bit hashes: a miss proves a pair was never added.

    A hit is a pair that was added, but for a chance of about (pairs added) / 2**64. Python's
    ``hash`` is randomised per process, so a filter lives in one process's memory and each
    process builds its own. New hashes go into a set; past ``_RECENT_MAX`` they are merged
    into a sorted array, which holds the bulk at 8 bytes a pair.
    """

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)
        self._recent: set[int] = set()

    def add(self, hashed: np.ndarray) -> None:
        """Add pairs by their :func:`pair_hashes`."""
        self._recent.update(hashed.tolist())
        if len(self._recent) > _RECENT_MAX:
            recent = np.sort(np.fromiter(self._recent, dtype=np.int64, count=len(self._recent)))
            # Two sorted runs: the stable sort (a timsort for int64) merges them in linear time.
            self._sorted = np.sort(np.concatenate([self._sorted, recent]), kind="stable")
            self._recent.clear()

    def may_contain_any(self, hashed: np.ndarray) -> bool:
        """False proves that none of the pairs with these :func:`pair_hashes` was added."""
        if self._recent and not self._recent.isdisjoint(hashed.tolist()):
            return True
        if not len(self._sorted):
            return False
        at = np.minimum(np.searchsorted(self._sorted, hashed), len(self._sorted) - 1)
        return bool((self._sorted[at] == hashed).any())
