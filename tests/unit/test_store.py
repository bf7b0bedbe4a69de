import asyncio
import sqlite3

import pytest

from alertd.model import Attempt, DeliveryState, Event, Origin, Severity, new_event_id
from alertd.store import AttemptRecord, DeliveryFilter, EventFilter, NewEvent, Store, StoreUnavailable, ops
from alertd.store.migrations import LATEST, migrate, schema_version


def make_event(name: str = "pr.run.failed", key: str | None = None, severity: Severity = Severity.ERROR) -> Event:
    return Event(new_event_id(), name, severity, {"repo": "x"}, 1_700_000_000.0, "pr", key)


@pytest.fixture
async def store(tmp_path):
    s = Store(tmp_path / "alertd.db", "normal")
    await s.open()
    yield s
    await s.close()


async def test_events_and_deliveries_commit_together_and_read_back(store):
    event = make_event()
    [stored] = await store.insert_events([NewEvent(event, ("a", "b"))])
    assert not stored.duplicate and [d.channel for d in stored.deliveries] == ["a", "b"]
    assert await store.read.event(event.id) == event
    deliveries = await store.read.deliveries_for_event(event.id)
    assert [d.state for d in deliveries] == [DeliveryState.PENDING] * 2
    assert [d.id for d in deliveries] == [d.id for d in stored.deliveries]


async def test_concurrent_inserts_share_commits_and_idempotency_is_exact(store):
    items = [[NewEvent(make_event(key="same-key"), ("a",))] for _ in range(50)]
    results = await asyncio.gather(*(store.insert_events(i) for i in items))
    originals = {r[0].event_id for r in results}
    assert len(originals) == 1
    assert sum(not r[0].duplicate for r in results) == 1
    rows = await store.read.list_events(EventFilter(limit=100))
    assert len(rows) == 1


async def test_an_idempotency_key_older_than_24h_is_free_again(store):
    first = make_event(key="k")
    await store.insert_events([NewEvent(first, ())])
    await store.writer.submit(lambda c: c.execute("UPDATE idempotency SET created_at = created_at - 90000"))
    [again] = await store.insert_events([NewEvent(make_event(key="k"), ())])
    assert not again.duplicate and again.event_id != first.id


async def test_attempts_move_a_delivery_and_are_kept(store):
    [stored] = await store.insert_events([NewEvent(make_event(), ("a",))])
    d = stored.deliveries[0]
    await store.record_attempt(AttemptRecord(Attempt(d.id, 1, 1.0, 12.5, "failed", 500, "HTTP 500"),
                                             DeliveryState.RETRYING, 5.0))
    await store.record_attempt(AttemptRecord(Attempt(d.id, 2, 6.0, 3.0, "delivered", 200, None),
                                             DeliveryState.DELIVERED, 6.0))
    [after] = await store.read.deliveries_for_event(d.event_id)
    assert after.state is DeliveryState.DELIVERED and after.attempts == 2
    attempts = (await store.read.attempts_for([d.id]))[d.id]
    assert [(a.number, a.outcome, a.http_status, a.error) for a in attempts] == [
        (1, "failed", 500, "HTTP 500"), (2, "delivered", 200, None)]


async def test_attempts_finishing_together_share_one_commit_and_each_lands(store, monkeypatch):
    """Recorded together (one executemany per statement); a fallback in the middle keeps its own op, and
    the order in the transaction still follows submission: a retry then its success end delivered."""
    event = make_event()
    [stored] = await store.insert_events([NewEvent(event, tuple(f"c{i}" for i in range(40)))])
    ds = stored.deliveries
    commits = []
    store.writer.on_commit = lambda seconds, jobs: commits.append(jobs)
    statements = []  # rows per record_attempts call: merged records make one call for many
    real = ops.record_attempts
    monkeypatch.setattr(ops, "record_attempts", lambda conn, records: (statements.append(len(records)),
                                                                        real(conn, records))[1])
    hostile = "x" * 10_000 + "'); DROP TABLE attempts; --\x00"
    futures = [store.record_attempt(AttemptRecord(Attempt(d.id, 1, 1.0, 2.0, "failed", 500, hostile),
                                                  DeliveryState.RETRYING, 9.0)) for d in ds]
    futures.append(store.record_attempt(AttemptRecord(Attempt(ds[0].id, 2, 3.0, 1.0, "failed", 400, "HTTP 400"),
                                                      DeliveryState.DEAD, 3.0), (event, "spare")))
    futures += [store.record_attempt(AttemptRecord(Attempt(d.id, 2, 4.0, 1.0, "delivered", 200, None),
                                                   DeliveryState.DELIVERED, 4.0)) for d in ds[1:]]
    results = await asyncio.gather(*futures)
    assert sum(commits) == len(futures) and len(commits) < len(futures)
    assert sum(statements) == len(futures) and max(statements) > 1  # merged: one executemany for many
    assert 1 in statements  # the one with a fallback ran on its own
    assert [d.channel for d in results[len(ds)]] == ["spare"]  # the fallback, committed with the dead record
    assert all(r == [] for i, r in enumerate(results) if i != len(ds))
    after = {d.id: d for d in await store.read.deliveries_for_event(stored.event_id)}
    assert len(after) == len(ds) + 1
    assert after[ds[0].id].state is DeliveryState.DEAD
    assert all(after[d.id].state is DeliveryState.DELIVERED and after[d.id].attempts == 2 for d in ds[1:])
    attempts = await store.read.attempts_for([d.id for d in ds])
    assert all(len(attempts[d.id]) == 2 for d in ds)
    assert attempts[ds[5].id][0].error == hostile


async def test_due_work_comes_back_most_severe_first(store):
    info = make_event("a", severity=Severity.INFO)
    crit = make_event("b", severity=Severity.CRITICAL)
    await store.insert_events([NewEvent(info, ("x",)), NewEvent(crit, ("x",))])
    due = await store.read.deliveries_by_id(await store.read.due_ids(now=10**10, limit=10, channel="x"))
    assert [d.event_id for d in due] == [crit.id, info.id]
    assert await store.read.due_ids(now=0, limit=10, channel="x") == []
    assert await store.read.due_ids(now=10**10, limit=10, channel="y") == []


async def test_replayed_deliveries_link_to_the_original(store):
    event = make_event()
    [stored] = await store.insert_events([NewEvent(event, ("a",))])
    [replayed] = await store.add_deliveries(event, [("a", stored.deliveries[0].id)], Origin.REPLAY)
    assert replayed.origin is Origin.REPLAY and replayed.replay_of == stored.deliveries[0].id
    rows = await store.read.list_events(EventFilter())
    assert rows[0][1] == 2


async def test_filters_select_by_pattern_state_and_time(store):
    await store.insert_events([NewEvent(make_event("pr.run.failed"), ("a",)),
                               NewEvent(make_event("deploy.done"), ("a",))])
    assert [e.name for e, _ in await store.read.list_events(EventFilter(pattern="pr.*"))] == ["pr.run.failed"]
    assert [e.name for e, _ in await store.read.list_events(EventFilter(pattern="deploy.done"))] == ["deploy.done"]
    assert await store.read.list_events(EventFilter(since=2_000_000_000.0)) == []
    assert len(await store.read.list_events(EventFilter(until=2_000_000_000.0))) == 2
    pending = await store.read.list_deliveries(DeliveryFilter(state=DeliveryState.PENDING, pattern="pr.*"))
    assert [name for _, name in pending] == ["pr.run.failed"]


async def test_a_failing_job_does_not_fail_the_others_in_its_batch(store):
    def broken(conn: sqlite3.Connection) -> None:
        raise ValueError("bug")

    good = store.insert_events([NewEvent(make_event(), ())])
    bad = store.writer.submit(broken)
    good2 = store.insert_events([NewEvent(make_event(), ())])
    assert len(await good) == 1 and len(await good2) == 1
    with pytest.raises(ValueError, match="bug"):
        await bad


async def test_a_commit_failure_answers_store_unavailable_and_recovers(store):
    conn = store.writer._conn
    assert conn is not None
    # a disk-full or read-only store fails at commit time; simulate it with a write the database refuses
    await store.writer.submit(lambda c: c.execute("PRAGMA query_only = ON"))
    with pytest.raises(StoreUnavailable):
        await store.insert_events([NewEvent(make_event(), ("a",))])
    assert not store.healthy
    conn.execute("PRAGMA query_only = OFF")  # the writer thread is idle: it waits on its queue
    await store.insert_events([NewEvent(make_event(), ("a",))])
    assert store.healthy
    assert len(await store.read.list_events(EventFilter())) == 1


def test_migrations_are_numbered_and_refuse_a_newer_file(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert migrate(conn) == (0, LATEST)
    assert migrate(conn) == (LATEST, LATEST)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(RuntimeError, match="newer than this alertd"):
        migrate(conn)
    assert schema_version(conn) == LATEST + 1
    conn.close()
