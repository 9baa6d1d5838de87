"""One-event appends go through the journal: durable, idempotent, and seen by every read."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from events.journal import Journal
from events.log import EventLog, EventLogError
from events.types import encode
from tests.events.samples import started


def journal_rows(log: EventLog) -> int:
    return len(log._journal.rows())


def test_reads_see_journaled_events(tmp_path) -> None:
    with EventLog(tmp_path / "events.duckdb") as log:
        assert [log.append(started(i, 1)) for i in range(3)] == [[1], [2], [3]]
        assert journal_rows(log) == 3 and log.last_seq() == 3
        assert log.sql("SELECT seq, key FROM events ORDER BY seq")[1] == [
            (1, "e0#1"),
            (2, "e1#1"),
            (3, "e2#1"),
        ]
        assert journal_rows(log) == 0  # the read folded them into DuckDB
        log.append(started(3, 1))
        assert [r.seq for r in log.replay(from_seq=2)] == [3, 4]


def test_a_batch_after_journaled_events_comes_after_them(tmp_path) -> None:
    with EventLog(tmp_path / "events.duckdb") as log:
        log.append(started(0, 1))
        assert log.append(started(1, 3)) == [2, 3, 4]
        assert [r.event.eval_id for r in log.replay()] == ["e0", "e1", "e2", "e3"]


def test_journal_folds_when_it_holds_enough_events(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("events.log._FOLD_AT", 3)
    with EventLog(tmp_path / "events.duckdb") as log:
        for i in range(5):
            log.append(started(i, 1))
        assert journal_rows(log) == 2


def test_retried_single_appends_return_the_stored_seq_wherever_it_is(tmp_path) -> None:
    with EventLog(tmp_path / "events.duckdb") as log:
        assert log.append(started(0, 3)) == [1, 2, 3]  # in DuckDB
        assert log.append(started(1, 1)) == [2]
        assert log.append(started(3, 1)) == [4]  # journaled
        assert log.append(started(3, 1)) == [4]
        assert log.append(started(4, 2)) == [5, 6]  # folds the journal, then DuckDB
        assert log.append(started(3, 1)) == [4]
        assert log.append(started(5, 1)) == [6]
        assert log.append(started(6, 1)) == [7]
        # A batch of one new event and repeats of it is one event.
        assert log.append(started(7, 1) * 3) == [8, 8, 8]
        assert log.sql("SELECT count(*), max(seq) FROM events")[1] == [(8, 8)]


def test_journaled_events_survive_a_crash_with_their_seq_and_time(tmp_path) -> None:
    path = tmp_path / "events.duckdb"
    script = textwrap.dedent(
        f"""
        import os
        from events.log import EventLog
        from tests.events.samples import started
        log = EventLog({str(path)!r})
        log.append(started(0, 2))
        for i in range(2, 5):
            log.append(started(i, 1))
        os._exit(0)  # no close: the journal is not folded
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    journal = Journal(tmp_path / "events.duckdb.journal")
    assert [row[0] for row in journal.rows()] == [3, 4, 5]
    journal.close()
    with EventLog(path) as log:
        assert journal_rows(log) == 0
        assert log.last_seq() == 5
        replayed = list(log.replay())
        assert [r.seq for r in replayed] == [1, 2, 3, 4, 5]
        assert [r.event for r in replayed] == started(0, 5)
        times = [r.ts for r in replayed]
        assert times == sorted(times) and times[2] > times[1]
        assert log.append(started(0, 1)) == [1]  # in the file before it was opened
        assert log.append(started(4, 1)) == [5]  # in its journal before it was opened
        assert log.append(started(5, 1)) == [6]


def write_rows(path: Path, first: int, count: int) -> bytes:
    journal = Journal(path)
    for seq in range(first, first + count):
        event = started(seq - 1, 1)[0]
        journal.write((seq, 0, "EvalStarted", event.key, 1, encode(event).decode()))
    journal.close()
    return path.read_bytes()


def test_a_torn_or_corrupt_line_ends_the_journal(tmp_path) -> None:
    path = tmp_path / "events.duckdb"
    journal = tmp_path / "events.duckdb.journal"
    EventLog(path).close()
    data = write_rows(journal, 1, 2)
    second = data.index(b"\n") + 1
    journal.write_bytes(data[: second + 20])  # a crash in the middle of writing row 2
    with EventLog(path) as log:
        assert log.last_seq() == 1
    data = write_rows(journal, 2, 2)
    wrong = b"1" if data.startswith(b"0") else b"0"
    journal.write_bytes(wrong + data[1:])  # a wrong checksum on row 2: rows 2 and 3 are dropped
    with EventLog(path) as log:
        assert log.last_seq() == 1
        assert log.append(started(1, 1)) == [2]


def test_a_journal_of_another_log_is_refused(tmp_path) -> None:
    path = tmp_path / "events.duckdb"
    with EventLog(path) as log:
        log.append(started(0, 3))
        log._journal.write((9, 0, "EvalStarted", "e9#1", 1, encode(started(9, 1)[0]).decode()))
        log._pending.clear()
    with pytest.raises(EventLogError, match="continues at seq 9, but .* ends at seq 3"):
        EventLog(path)


def test_replay_is_in_seq_order_whatever_the_insertion_order(tmp_path) -> None:
    path = tmp_path / "events.duckdb"
    EventLog(path).close()
    con = duckdb.connect(str(path))
    for seq in (2, 3, 1):
        payload = encode(started(seq, 1)[0]).decode()
        con.execute(
            "INSERT INTO events VALUES (?, now(), 'EvalStarted', ?, 1, ?)",
            [seq, f"e{seq}#1", payload],
        )
    con.close()
    with EventLog(path) as log:
        assert [(r.seq, r.event.eval_id) for r in log.replay()] == [(1, "e1"), (2, "e2"), (3, "e3")]
