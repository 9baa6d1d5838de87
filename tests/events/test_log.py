"""The DuckDB event log: atomic idempotent batches, ordered replay, read-only SQL, views."""

from __future__ import annotations

import asyncio

import duckdb
import pytest

import events.log
from events.client import LocalLogClient
from events.log import EventLog, LogLockedError, ReadOnlyQueryError
from events.types import EvalStarted, EventDecodeError, SubmissionCommitted
from tests.events.samples import DIGEST, HOTKEY, one_of_each, started


@pytest.fixture
def log(tmp_path):
    with EventLog(tmp_path / "events.duckdb") as log:
        yield log


def stored(log: EventLog) -> list[tuple[int, str, str]]:
    return log.sql("SELECT seq, type, key FROM events ORDER BY seq")[1]


def test_append_numbers_events_from_one_in_order(log) -> None:
    events = one_of_each()
    assert log.append(events) == list(range(1, len(events) + 1))
    assert [r.event for r in log.replay()] == events
    assert log.last_seq() == len(events)


def test_duplicates_return_the_stored_seq_and_store_nothing(log) -> None:
    first = log.append(started(0, 5))
    assert first == [1, 2, 3, 4, 5]
    # A retried batch, and a batch mixing stored, new and repeated events.
    assert log.append(started(0, 5)) == first
    mixed = [*started(3, 4), started(1, 1)[0], started(5, 1)[0]]
    assert log.append(mixed) == [4, 5, 6, 7, 2, 6]
    assert [key for _, _, key in stored(log)] == [f"e{i}#1" for i in range(7)]


def test_single_appends_are_idempotent_and_contiguous(log) -> None:
    # One-event batches take their own statement; it must keep the batch path's guarantees.
    assert [log.append(started(i, 1)) for i in range(3)] == [[1], [2], [3]]
    assert log.append(started(1, 1)) == [2]
    assert log.append(started(3, 1)) == [4]
    assert [seq for seq, _, _ in stored(log)] == [1, 2, 3, 4]


def test_a_log_created_with_an_index_on_seq_still_opens_and_appends(tmp_path) -> None:
    # Logs written before `seq` lost its index keep it; appending to them must still work.
    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(events.log._SCHEMA.replace("seq BIGINT NOT NULL", "seq BIGINT PRIMARY KEY", 1))
        primary_keys = (
            "SELECT count(*) FROM duckdb_constraints() "
            "WHERE table_name = 'events' AND constraint_type = 'PRIMARY KEY'"
        )
        assert con.execute(primary_keys).fetchall() == [(1,)]
    with EventLog(path) as log:
        assert log.append(started(0, 3)) == [1, 2, 3]
        assert log.append(started(2, 2)) == [3, 4]
        assert log.append(started(4, 1)) == [5]


def test_same_key_in_another_type_is_a_different_event(log) -> None:
    # EvalQueued, EvalFinished and KingCrowned are all keyed by the eval id.
    log.append(one_of_each())
    assert log.sql("SELECT type FROM events WHERE key = 'ev-1' ORDER BY seq")[1] == [
        ("EvalQueued",),
        ("EvalFinished",),
        ("KingCrowned",),
    ]


def test_a_failing_batch_stores_none_of_its_events(log) -> None:
    log.append(started(0, 2))
    bad = [*started(2, 3), EvalStarted(eval_id="x\x1ey", attempt=1, worker="w")]
    with pytest.raises(ValueError, match="record separator"):
        log.append(bad)
    assert log.last_seq() == 2
    assert log.append(started(2, 1)) == [3]


def test_a_batch_is_all_or_nothing_when_the_database_rejects_it(log) -> None:
    log.append(started(0, 2))
    # The third event of the batch carries a version DuckDB refuses (not an integer; msgspec
    # does not check types on construction): the whole statement, and with it the batch's
    # transaction, must fail.
    bad = [*started(2, 2), EvalStarted(eval_id="e4", attempt=1, worker="w", v="x")]
    with pytest.raises(duckdb.ConversionException):
        log.append(bad)
    assert log.last_seq() == 2
    assert log.sql("SELECT count(*) FROM events")[1] == [(2,)]
    assert log.append(started(2, 3)) == [3, 4, 5]


def test_events_survive_reopening(tmp_path) -> None:
    path = tmp_path / "events.duckdb"
    with EventLog(path) as log:
        log.append(one_of_each())
        log.ack("scheduler", 4)
    with EventLog(path) as log:
        assert [r.event for r in log.replay()] == one_of_each()
        assert log.cursor("scheduler") == 4
        # The reopened log knows what is stored: a retried batch and single store nothing.
        stored_seqs = list(range(1, len(one_of_each()) + 1))
        assert log.append(one_of_each()) == stored_seqs
        assert log.append(one_of_each()[:1]) == [1]
        assert log.append(started(0, 1)) == [len(one_of_each()) + 1]


def test_replay_filters_by_type_and_seq_in_order(log) -> None:
    log.append(one_of_each())
    log.append(started(0, 3))
    replayed = list(log.replay(from_seq=4, types=["EvalStarted", "KingCrowned"]))
    assert [type(r.event).__name__ for r in replayed] == ["EvalStarted", "KingCrowned"] + [
        "EvalStarted"
    ] * 3
    seqs = [r.seq for r in replayed]
    assert seqs == sorted(seqs) and seqs[0] > 4
    assert [r.seq for r in log.replay(from_seq=seqs[-1])] == []
    assert len(list(log.replay(types=["EvalStarted"], limit=2))) == 2


def test_replay_streams_across_chunks(log, monkeypatch) -> None:
    monkeypatch.setattr("events.log._REPLAY_CHUNK", 7)
    for first in range(0, 100, 10):
        log.append(started(first, 10))
    assert [r.seq for r in log.replay(from_seq=3)] == list(range(4, 101))
    assert [r.event.eval_id for r in log.replay(95)] == [f"e{i}" for i in range(95, 100)]


def test_replay_names_the_seq_of_an_event_it_cannot_read(tmp_path) -> None:
    path = tmp_path / "events.duckdb"
    with EventLog(path) as log:
        log.append(started(0, 2))
    con = duckdb.connect(str(path))
    con.execute(
        """INSERT INTO events VALUES (3, now(), 'Comet', 'c1', 1, '{"type":"Comet","v":1}'),
        (4, now(), 'EvalStarted', 'e9#1', 2,
         '{"type":"EvalStarted","v":2,"eval_id":"e9","attempt":1,"worker":"w"}')"""
    )
    con.close()
    with EventLog(path) as log:
        assert len(list(log.replay(types=["EvalStarted"], limit=2))) == 2
        with pytest.raises(EventDecodeError, match="seq 3 .*not a known event"):
            list(log.replay(from_seq=2))
        with pytest.raises(EventDecodeError, match="seq 4 .*EvalStarted v2 is newer"):
            list(log.replay(from_seq=3))


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO events VALUES (99, now(), 't', 'k', 1, '{}')",
        "DROP TABLE events",
        "DELETE FROM events",
        "UPDATE cursors SET seq = 0",
        "ATTACH '/tmp/other.duckdb' AS other",
        "COPY events TO '/tmp/events.csv'",
        "PRAGMA database_list",
        "SET threads = 1",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; DROP TABLE events",
        "CALL pragma_version()",
    ],
)
def test_sql_rejects_anything_but_one_read_only_statement(log, query) -> None:
    log.append(started(0, 1))
    with pytest.raises(ReadOnlyQueryError):
        log.sql(query)
    assert log.sql("SELECT count(*) FROM events")[1] == [(1,)]


def test_sql_cannot_read_other_files(log, tmp_path) -> None:
    other = tmp_path / "secret.csv"
    other.write_text("a\n1\n")
    with pytest.raises(duckdb.PermissionException):
        log.sql(f"SELECT * FROM read_csv('{other}')")


@pytest.mark.parametrize(
    "query", ["SELECT 1", "WITH x AS (SELECT 2) SELECT * FROM x", "DESCRIBE kings", "SHOW TABLES"]
)
def test_sql_answers_read_only_statements(log, query) -> None:
    columns, rows = log.sql(query)
    assert columns and rows


def test_sql_takes_parameters(log) -> None:
    log.append(started(0, 3))
    assert log.sql("SELECT key FROM events WHERE seq = ?", [2]) == (["key"], [("e1#1",)])


def test_views_project_payload_fields(log) -> None:
    log.append(one_of_each())
    log.append(
        [
            SubmissionCommitted(
                netuid=7, uid=2, hotkey="5Other", block=15, image="r/x", digest=DIGEST
            )
        ]
    )
    assert log.sql("SELECT status, uid, hotkey, block FROM submissions ORDER BY seq")[1] == [
        ("committed", 1, HOTKEY, 11),
        ("rejected", None, "5Bad", 11),
        ("committed", 2, "5Other", 15),
    ]
    columns, rows = log.sql(
        "SELECT eval_id, image, submitted_block, verdict, score, metrics->>'ttft_ms_p50' "
        "FROM evaluations"
    )
    assert rows == [("ev-1", "127.0.0.1:5000/m", 11, "pass", 0.25, "30.0")]
    assert log.sql("SELECT change, hotkey, score, eval_id FROM kings ORDER BY seq")[1] == [
        ("crowned", HOTKEY, 0.25, "ev-1"),
        ("defended", HOTKEY, 0.25, "ev-2"),
        ("dethroned", HOTKEY, None, "ev-3"),
    ]
    assert log.sql("SELECT block, success, uids, weights, extrinsic_hash FROM weights")[1] == [
        (13, True, [1], [65535], "0xabc")
    ]
    columns, rows = log.sql(
        "SELECT key_id, epoch(minute_start)::BIGINT, requests, completion_tokens FROM organic_usage"
    )
    assert rows == [("key-1", 29_123_456 * 60, 10, 900)]


def test_cursors_only_move_forward(log) -> None:
    assert log.cursor("crown_keeper") == 0
    log.ack("crown_keeper", 5)
    log.ack("crown_keeper", 3)  # a late ack from a retried call
    assert log.cursor("crown_keeper") == 5
    assert log.cursor("scheduler") == 0


def test_a_second_process_cannot_open_a_held_log(log, tmp_path) -> None:
    import subprocess
    import sys

    script = (
        "import sys\nfrom events.log import EventLog, LogLockedError\n"
        "try:\n    EventLog(sys.argv[1])\nexcept LogLockedError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(log.path)], capture_output=True, text=True, check=True
    )
    assert "held by another process" in out.stdout and "EventLogActor" in out.stdout
    assert issubclass(LogLockedError, Exception)


async def test_local_client_wait_for_returns_new_events_in_order(log) -> None:
    client = LocalLogClient(log)
    client.append(started(0, 2))
    assert await client.wait_for(2, timeout_s=0.01) == []
    waiter = asyncio.create_task(client.wait_for(2, ["EvalStarted"], timeout_s=30))
    await asyncio.sleep(0)  # let the waiter block on the log
    assert not waiter.done()
    await client.append_async(one_of_each())  # no EvalStarted first ... then one
    got = await waiter
    assert [type(r.event).__name__ for r in got] == ["EvalStarted"]
    assert got[0].seq == 2 + 5


async def test_local_client_follow_resumes_from_its_cursor(log) -> None:
    client = LocalLogClient(log)
    client.append(started(0, 5))
    seen = []
    async for record in client.follow("folder", ["EvalStarted"], batch=2):
        seen.append(record.seq)
        if len(seen) == 3:
            break
    # The first batch (1, 2) was handled and acknowledged; 3 was delivered, not acknowledged.
    assert await client.cursor("folder") == 2
    again = []
    async for record in client.follow("folder", ["EvalStarted"], batch=2):
        again.append(record.seq)
        if record.seq == 5:
            break
    assert seen == [1, 2, 3] and again == [3, 4, 5]
