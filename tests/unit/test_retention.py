import time

import pytest

from alertd.clock import ManualClock
from alertd.config import MAX_LINK_TTL
from alertd.model import Attempt, DeliveryState, Event, Severity, new_event_id
from alertd.scheduler import LINK_ID_GRACE_S, RETENTION_BATCH, Scheduler
from alertd.store import AttemptRecord, NewEvent, Store
from alertd.store.incident_ops import approve, claim_token
from alertd.store.ops import audit

DAY = 86400.0


@pytest.fixture
async def store(tmp_path):
    s = Store(tmp_path / "r.db", "normal")
    await s.open()
    yield s
    await s.close()


async def add(store: Store, created_at: float, count: int) -> list[str]:
    events = [Event(new_event_id(created_at), "x.y", Severity.INFO, {"n": i}, created_at) for i in range(count)]
    stored = await store.insert_events([NewEvent(e, ("a",)) for e in events])
    for result in stored:
        d = result.deliveries[0]
        await store.record_attempt(AttemptRecord(Attempt(d.id, 1, created_at, 1.0, "delivered", 200, None),
                                                 DeliveryState.DELIVERED, created_at))
    return [e.id for e in events]


async def count(store: Store, table: str) -> int:
    return (await store.read._all(f"SELECT count(*) FROM {table}"))[0][0]


async def test_history_older_than_retention_goes_in_batches_and_recent_history_stays(store):
    now = time.time()
    old = await add(store, now - 40 * DAY, RETENTION_BATCH + 20)  # more than one batch
    recent = await add(store, now - 1 * DAY, 5)
    await store.writer.submit(lambda c: audit(c, "incident.opened", "incident:1", "t", {}, now - 200 * DAY))
    await store.writer.submit(lambda c: audit(c, "incident.opened", "incident:2", "t", {}, now - 400 * DAY))
    scheduler = Scheduler(store, None, lambda envelopes, source: [], ManualClock(now),  # type: ignore[arg-type]
                          retention_days=30, audit_retention_days=365)
    assert await scheduler.purge() == len(old)
    assert await count(store, "events") == len(recent)
    assert await count(store, "deliveries") == len(recent)
    assert await count(store, "attempts") == len(recent)
    assert await store.read.event(recent[0]) is not None and await store.read.event(old[0]) is None
    assert [r[0] for r in await store.read._all("SELECT subject FROM audit")] == ["incident:1"]
    assert await scheduler.purge() == 0


async def test_ids_are_not_handed_out_again_after_retention_purged_the_highest(store):
    now = time.time()
    await add(store, now - 1 * DAY, 1)
    old = await add(store, now - 40 * DAY, 1)  # inserted last: it holds the highest delivery id
    [top] = await store.read.deliveries_for_event(old[0])
    scheduler = Scheduler(store, None, lambda envelopes, source: [], ManualClock(now),  # type: ignore[arg-type]
                          retention_days=30)
    assert await scheduler.purge() == 1
    ids = store.ids
    await store.writer.submit(ids.load)
    assert ids.take(1) > top.id


async def test_an_event_with_an_open_incident_is_kept(store):
    now = time.time()
    [event_id] = await add(store, now - 40 * DAY, 1)
    await store.writer.submit(lambda c: c.execute(
        "INSERT INTO incidents (event_id, route, state, opened_at) VALUES (?, 'r', 'open', ?)", (event_id, now)))
    scheduler = Scheduler(store, None, lambda envelopes, source: [], ManualClock(now),  # type: ignore[arg-type]
                          retention_days=30)
    assert await scheduler.purge() == 0
    assert await store.read.event(event_id) is not None


async def test_used_link_ids_are_kept_as_long_as_a_link_can_live_then_purged(store):
    # a used link's id must outlive every link that could carry it (at most MAX_LINK_TTL after issue),
    # whatever retention_days says; after that it can never verify again, so the row goes
    now = time.time()
    kept_since = now - MAX_LINK_TTL - LINK_ID_GRACE_S  # a day's grace for a wall clock stepped back
    for jti, used_at in (("old", kept_since - 1), ("edge", kept_since), ("young", now - MAX_LINK_TTL), ("now", now)):
        assert await store.writer.submit(lambda c, j=jti, u=used_at: claim_token(c, j, u))
    scheduler = Scheduler(store, None, lambda envelopes, source: [], ManualClock(now),  # type: ignore[arg-type]
                          retention_days=1)
    await scheduler.purge()
    assert sorted(r[0] for r in await store.read._all("SELECT jti FROM used_tokens")) == ["edge", "now", "young"]
    # a kept id still refuses a second use
    assert not await store.writer.submit(lambda c: claim_token(c, "young", now))


async def test_an_approval_whose_event_is_gone_changes_nothing_and_leaves_the_link_unspent(store):
    now = time.time()
    await store.writer.submit(lambda c: c.execute(
        "INSERT INTO action_requests (id, event_id, action, label, state, created_at) "
        "VALUES (1, 'evt_gone', 'restart-api', 'Restart API', 'pending', ?)", (now,)))
    result = await store.writer.submit(lambda c: approve(c, 1, "link:j1", "j1", None, store.ids, now))
    assert result.outcome == "gone"
    assert (await store.read._all("SELECT state FROM action_requests"))[0][0] == "pending"
    assert await count(store, "used_tokens") == 0
