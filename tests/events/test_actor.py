"""The EventLogActor over Ray: appends, long-poll delivery in order, and restarts."""

from __future__ import annotations

import asyncio

import pytest
import ray

from actors.event_log import ACTOR_NAME, NAMESPACE, get_or_create_event_log
from actors.log_client import LogClient
from events.log import ReadOnlyQueryError
from events.types import EvalStarted
from tests.events.samples import one_of_each

pytestmark = pytest.mark.ray


def started(prefix: str, count: int) -> list[EvalStarted]:
    return [EvalStarted(eval_id=f"{prefix}-{i}", attempt=1, worker=prefix) for i in range(count)]


@pytest.fixture
def client(event_log_actor) -> LogClient:
    return LogClient(event_log_actor, retry_s=60)


def test_actor_is_found_by_name_in_the_arena_namespace(event_log_actor) -> None:
    assert ray.get_actor(ACTOR_NAME, namespace=NAMESPACE)._actor_id == event_log_actor._actor_id


def test_a_second_log_on_another_file_is_refused(event_log_actor, tmp_path) -> None:
    with pytest.raises(ValueError, match="already runs on"):
        get_or_create_event_log(tmp_path / "other.duckdb")


def test_append_replay_and_sql_through_the_actor(client) -> None:
    base = client.last_seq()
    events = one_of_each()
    seqs = client.append(events)
    assert seqs == list(range(base + 1, base + len(events) + 1))
    assert client.append(events) == seqs  # a retried append is a no-op
    assert [r.event for r in client.replay(base)] == events
    assert [r.seq for r in client.replay(base, ["KingCrowned"])] == [base + 8]
    assert client.sql("SELECT count(*) FROM kings WHERE seq > ?", [base])[1] == [(3,)]
    with pytest.raises(ReadOnlyQueryError):
        client.sql("DROP TABLE events")


def test_replay_pages_through_many_events(client) -> None:
    base = client.last_seq()
    for page in range(3):
        client.append(started(f"page{page}", 5000))
    seqs = [r.seq for r in client.replay(base)]
    assert seqs == list(range(base + 1, base + 15_001))
    assert len(list(client.replay(base, limit=12_345))) == 12_345


async def test_wait_for_delivers_concurrent_appends_in_order_without_gaps(client) -> None:
    base = client.last_seq()
    writers, batches, size = 4, 15, 20

    @ray.remote(num_cpus=0)
    def writer(name: str) -> None:
        from actors.log_client import LogClient
        from events.types import EvalStarted

        log = LogClient()
        for b in range(batches):
            ids = [f"{name}-{b}-{i}" for i in range(size)]
            log.append([EvalStarted(eval_id=i, attempt=1, worker=name) for i in ids])

    total = writers * batches * size
    received = []
    tasks = [writer.remote(f"concurrent{w}") for w in range(writers)]
    after = base
    while len(received) < total:
        records = await client.wait_for(after, ["EvalStarted"], timeout_s=60, limit=37)
        assert records, "wait_for timed out while writers were still appending"
        received.extend(records)
        after = records[-1].seq
    await asyncio.gather(*tasks)
    assert [r.seq for r in received] == list(range(base + 1, base + total + 1))
    keys = [r.event.key for r in received]
    assert len(set(keys)) == total
    # Each writer's batches arrive in the order it appended them.
    for w in range(writers):
        mine = [k for k in keys if k.startswith(f"concurrent{w}-")]
        assert mine == [f"concurrent{w}-{b}-{i}#1" for b in range(batches) for i in range(size)]


async def test_wait_for_returns_empty_after_its_timeout(client) -> None:
    assert await client.wait_for(client.last_seq(), timeout_s=0.2) == []


async def test_follow_resumes_from_the_persisted_cursor(client) -> None:
    base = client.last_seq()
    await client.ack("test-follower", base)
    client.append(started("follow", 6))
    seen = []
    async for record in client.follow("test-follower", ["EvalStarted"], batch=4):
        seen.append(record.event.eval_id)
        if len(seen) == 5:
            break
    assert await client.cursor("test-follower") == base + 4
    resumed = []
    async for record in client.follow("test-follower", ["EvalStarted"], batch=4):
        resumed.append(record.event.eval_id)
        if record.event.eval_id == "follow-5":
            break
    assert seen == [f"follow-{i}" for i in range(5)]
    assert resumed == ["follow-4", "follow-5"]


async def test_restart_loses_nothing_and_pending_waits_survive(client, event_log_actor) -> None:
    base = client.last_seq()
    before = client.append(started("restart-a", 50))
    await client.ack("restart-follower", before[-1])
    waiter = asyncio.ensure_future(client.wait_for(before[-1], ["EvalStarted"], timeout_s=120))
    ray.kill(event_log_actor, no_restart=False)
    after = client.append(started("restart-b", 50))  # retried until the actor is back
    assert after == list(range(before[-1] + 1, before[-1] + 51))
    assert client.append(started("restart-a", 50)) == before
    assert [r.event.eval_id for r in client.replay(base)] == [
        f"restart-{p}-{i}" for p in "ab" for i in range(50)
    ]
    assert await client.cursor("restart-follower") == before[-1]
    woken = await waiter
    assert woken and woken[0].seq == before[-1] + 1
