"""Regression tests for the correctness review: each one pins an interleaving or input that used to lose,
duplicate or delay alerts."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

import alertd.scheduler as scheduler_module
import alertd.store.writer as writer_module
from alertd.channels.base import BaseChannel, ChannelConfig, Outcome, PermanentError
from alertd.checks import CheckDecl
from alertd.clock import ManualClock
from alertd.config import ConfigError, build_channels
from alertd.dispatch import Dispatcher, Job
from alertd.model import Event, Message, Severity, new_event_id
from alertd.retry import RetryPolicy
from alertd.scheduler import Scheduler
from alertd.store import NewEvent, Store, StoreUnavailable
from alertd.store.ops import DedupClaim
from alertd.store.reads import check_rows
from alertd.store.writer import Writer

DAY = 86400.0
FAST = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.01)


class FakeChannel(BaseChannel):
    type_name = "fake"

    def __init__(self, name: str, *, refuse: bool = False, **config: object) -> None:
        super().__init__(ChannelConfig(name=name, type="fake", **config), http=None)  # type: ignore[arg-type]
        self.refuse = refuse
        self.sent: list[Message] = []

    async def send(self, message: Message) -> Outcome:
        self.sent.append(message)
        if self.refuse:
            raise PermanentError("HTTP 401")
        return Outcome(200)


class NoDispatch:
    """The scheduler's tests look at stored events only."""

    def offer(self, jobs: object) -> None:
        list(jobs)  # type: ignore[call-overload]


def prepare(envelopes, source):  # type: ignore[no-untyped-def]
    now = time.time()
    return [NewEvent(Event(new_event_id(now), e.event, e.severity, e.payload, now, source), ()) for e in envelopes]


@pytest.fixture
async def store(tmp_path):
    s = Store(tmp_path / "review.db", "normal")
    await s.open()
    yield s
    await s.close()


async def names_of_events(store: Store, name: str) -> int:
    return (await store.read._all("SELECT count(*) FROM events WHERE name = ?", (name,)))[0][0]


def failing_submit(store: Store):  # type: ignore[no-untyped-def]
    def submit(op):  # type: ignore[no-untyped-def]
        future = asyncio.get_running_loop().create_future()
        future.set_exception(StoreUnavailable("database or disk is full"))
        return future
    return submit


async def until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


# ---- store/writer.py ----------------------------------------------------------------------------

async def test_close_commits_a_job_queued_while_the_writer_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "CHECKPOINT_EVERY_COMMITS", 1)
    writer = Writer(tmp_path / "w.db", "normal")
    writer.start()
    gate = asyncio.Event()
    checkpoint = writer._checkpoint

    async def slow_checkpoint() -> None:
        await gate.wait()
        await checkpoint()

    writer._checkpoint = slow_checkpoint  # type: ignore[method-assign]
    await writer.submit(lambda c: c.execute("CREATE TABLE t (x)"))  # the writer now checkpoints
    late = writer.submit(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    closing = asyncio.create_task(writer.close())
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(closing, 5)
    assert late.done() and late.exception() is None  # "commits what is queued, then stops"
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    conn.close()
    after = writer.submit(lambda c: None)  # a write after close fails at once instead of hanging forever
    assert after.done() and isinstance(after.exception(), StoreUnavailable)


# ---- dispatch.py --------------------------------------------------------------------------------

async def test_an_offer_turned_away_during_a_refill_keeps_the_overflow_flag(store):
    dispatcher = Dispatcher(store, {"a": FakeChannel("a")}, FAST, window=16)  # not started: nothing is consumed
    assert dispatcher.share() == 16
    counts = store.read.open_by_channel

    async def counts_then_late_events() -> dict[str, int]:
        found = await counts()
        # producers' events commit after the count was read: 16 fill the channel's share, the 17th is turned away
        late = [Event(new_event_id(), "x.y", Severity.ERROR, {}, time.time()) for _ in range(17)]
        results = await store.insert_events([NewEvent(e, ("a",)) for e in late])
        for stored, event in zip(results, late, strict=True):
            dispatcher.offer(Job(d, event) for d in stored.deliveries)
        return found

    store.read.open_by_channel = counts_then_late_events  # type: ignore[method-assign]
    await dispatcher.refill()
    assert len(dispatcher.held) == 16
    # the store holds work memory does not: a False here waits for the 30 s safety refill
    assert dispatcher.overflow


async def test_critical_work_overtakes_info_on_a_rate_limited_channel(store):
    channel = FakeChannel("slack", rate="10/s", concurrency=8)  # a burst of 10, then one every 100 ms
    dispatcher = Dispatcher(store, {"slack": channel}, FAST)
    await dispatcher.start()
    infos = [Event(new_event_id(), "x.y", Severity.INFO, {"n": n}, time.time()) for n in range(30)]
    for event, stored in zip(infos, await store.insert_events([NewEvent(e, ("slack",)) for e in infos]),
                             strict=True):
        dispatcher.offer(Job(d, event) for d in stored.deliveries)
    await asyncio.sleep(0.02)  # the burst is out; the rest waits for tokens
    critical = Event(new_event_id(), "x.y", Severity.CRITICAL, {}, time.time())
    [stored] = await store.insert_events([NewEvent(critical, ("slack",))])
    dispatcher.offer(Job(d, critical) for d in stored.deliveries)
    await until(lambda: _sent(channel, critical.id), timeout=5)
    position = [m.event.id for m in channel.sent].index(critical.id)
    await dispatcher.drain(0.1)
    # the next token goes to the critical, not to the infos that workers popped and sat on while they waited
    assert position <= 14, position  # was 18 or more: after the burst and the 8 popped infos


async def _sent(channel: FakeChannel, event_id: str) -> bool:
    return any(m.event.id == event_id for m in channel.sent)


@pytest.mark.parametrize("failing_write", [1, 2])
async def test_a_dead_delivery_and_its_fallback_commit_together(store, failing_write):
    dispatcher = Dispatcher(store, {"main": FakeChannel("main", refuse=True, fallback="backup"),
                                    "backup": FakeChannel("backup")}, FAST)
    event = Event(new_event_id(), "x.y", Severity.ERROR, {}, time.time())
    await store.insert_events([NewEvent(event, ("main",))])
    submit, writes = store.writer.submit, {"n": 0}

    def one_write_fails(op):  # type: ignore[no-untyped-def]
        writes["n"] += 1  # a full disk for exactly one of the dispatcher's writes
        return failing_submit(store)(op) if writes["n"] == failing_write else submit(op)

    store.writer.submit = one_write_fails  # type: ignore[method-assign]
    await dispatcher.start()  # its refill takes the delivery
    await asyncio.sleep(0.3)
    await dispatcher.drain(1)
    store.writer.submit = submit  # type: ignore[method-assign]
    main, *fallbacks = await store.read.deliveries_for_event(event.id)
    # dead with its fallback, or still open with none: never dead with no fallback, nor a fallback for an open one
    assert (main.state.value == "dead") == (len(fallbacks) == 1), (main.state, fallbacks)


# ---- store/ops.py -------------------------------------------------------------------------------

async def test_an_event_its_dedup_window_suppresses_opens_no_second_escalating_incident(store):
    claim = DedupClaim("pages", "deploy.failed", 300.0, ("ops",))

    def paged() -> NewEvent:
        event = Event(new_event_id(), "deploy.failed", Severity.ERROR, {}, time.time())
        return NewEvent(event, ("ops",), (claim,), escalations=(("pages", 600.0),))

    [first] = await store.insert_events([paged()])
    [repeat] = await store.insert_events([paged()])
    assert first.deliveries and first.incidents
    assert repeat.skipped and not repeat.deliveries
    # its message (with the acknowledge link) never goes out, yet it would page sms/voice in 10 minutes
    assert repeat.incidents == []
    assert (await store.read._all("SELECT count(*) FROM incidents"))[0][0] == 1


# ---- scheduler.py + store/scheduler_ops.py -------------------------------------------------------

async def test_retention_never_deletes_an_event_whose_deliveries_are_still_open(store):
    now = time.time()
    old = Event(new_event_id(now - 40 * DAY), "x.y", Severity.ERROR, {}, now - 40 * DAY)
    [stored] = await store.insert_events([NewEvent(old, ("a",))])  # pending: never attempted (backlog, downtime)
    scheduler = Scheduler(store, NoDispatch(), prepare, ManualClock(now), retention_days=30)  # type: ignore[arg-type]
    await scheduler.purge()
    kept = await store.read.deliveries_for_event(old.id)
    assert [(d.id, d.state.is_open) for d in kept] == [(stored.deliveries[0].id, True)]
    assert await store.read.event(old.id) is not None


async def test_a_failed_retention_run_is_tried_again(store):
    clock = ManualClock()
    scheduler = Scheduler(store, NoDispatch(), prepare, clock, retention_days=30)  # type: ignore[arg-type]
    await scheduler.start([])
    old = Event(new_event_id(clock.now() - 40 * DAY), "x.y", Severity.INFO, {}, clock.now() - 40 * DAY)
    await store.insert_events([NewEvent(old, ())])
    submit = store.writer.submit
    store.writer.submit = failing_submit(store)  # type: ignore[method-assign]
    clock.advance(61)  # the first retention run meets a full disk
    await asyncio.sleep(0.05)
    store.writer.submit = submit  # type: ignore[method-assign]
    clock.advance(2 * 3600)
    try:
        await until(lambda: _is_none(store.read.event(old.id)), timeout=2)
    finally:
        await scheduler.stop()


async def _is_none(awaitable) -> bool:  # type: ignore[no-untyped-def]
    return await awaitable is None


async def test_a_check_deadline_that_could_not_commit_is_tried_again(store):
    clock = ManualClock()
    scheduler = Scheduler(store, NoDispatch(), prepare, clock)  # type: ignore[arg-type]
    decl = CheckDecl(name="nightly.backup", period="1h", grace="5m")
    await scheduler.start([decl])
    await scheduler.ping("nightly.backup", "success", None, None, "p")
    submit = store.writer.submit
    store.writer.submit = failing_submit(store)  # type: ignore[method-assign]
    clock.advance(3900 + 1)  # the deadline passes while the store cannot commit
    await asyncio.sleep(0.05)
    store.writer.submit = submit  # type: ignore[method-assign]
    clock.advance(120)
    try:
        await until(lambda: _at_least(names_of_events(store, "alertd.check.down"), 1), timeout=2)
    finally:
        await scheduler.stop()


async def _at_least(awaitable, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await awaitable >= n


async def test_a_reload_racing_a_ping_keeps_the_ping_and_raises_no_false_down(store, monkeypatch):
    clock = ManualClock()
    scheduler = Scheduler(store, NoDispatch(), prepare, clock)  # type: ignore[arg-type]
    decl = CheckDecl(name="nightly.backup", period="1h", grace="5m")
    await scheduler.start([decl])
    await scheduler.ping("nightly.backup", "success", None, None, "p")
    clock.advance(3000)  # the next ping comes in good time ...
    rows = await check_rows(store.read)

    async def rows_at_once(reader: object) -> list:
        return rows

    monkeypatch.setattr(scheduler_module, "check_rows", rows_at_once)
    # ... while a reload (SIGHUP) re-syncs the declared checks
    await asyncio.gather(scheduler.sync_config([decl]),
                         scheduler.ping("nightly.backup", "success", None, None, "p"))
    assert scheduler.checks["nightly.backup"].state.last_ping_at == clock.now()
    clock.advance(1000)  # past the old deadline, well before the new one
    await asyncio.sleep(0.1)
    await scheduler.stop()
    assert await names_of_events(store, "alertd.check.down") == 0


async def test_an_expectation_timeout_is_emitted_once_when_its_group_commit_is_rerun(store):
    clock = ManualClock()
    scheduler = Scheduler(store, NoDispatch(), prepare, clock)  # type: ignore[arg-type]
    await scheduler.expect("run-1", clock.now() + 60, Severity.ERROR, {}, None, "p")
    clock.advance(61)
    found = {"severity": int(Severity.ERROR), "payload": {}, "group": None}

    def another_jobs_bug(conn: sqlite3.Connection) -> None:
        raise RuntimeError("a bug in another job of the same group commit")

    async def faulty() -> None:
        with pytest.raises(RuntimeError):
            await store.writer.submit(another_jobs_bug)

    # the writer runs the batch, it fails on the other job, so each job is run again alone
    await asyncio.gather(scheduler._resolve("run-1", "timed_out", found, {}), faulty())
    assert await names_of_events(store, "alertd.outcome.timeout") == 1


# ---- config.py ----------------------------------------------------------------------------------

def test_a_fallback_cycle_is_refused():
    a = {"name": "a", "type": "webhook", "url": "https://a.example/", "fallback": "b"}
    b = {"name": "b", "type": "webhook", "url": "https://b.example/", "fallback": "a"}
    with pytest.raises(ConfigError, match="fallback"):
        build_channels([a, b])
    c = {"name": "c", "type": "webhook", "url": "https://c.example/"}
    assert set(build_channels([{**a, "fallback": "c"}, {**b, "fallback": "a"}, c])) == {"a", "b", "c"}  # a chain


async def test_api_channels_whose_fallback_is_gone_or_circles_are_left_out_not_fatal(store):
    from alertd.config import Config, Settings
    from alertd.live import build_snapshot
    from alertd.store import admin_ops

    rows = {"a": "b", "b": "a", "c": "gone", "d": "e", "e": None, "f": "d"}  # a↔b circle, c dangling, f→d→e fine
    for name, fallback in rows.items():
        raw = {"name": name, "type": "webhook", "url": f"https://{name}.example/", "fallback": fallback}
        await store.writer.submit(lambda c, n=name, r=raw: admin_ops.upsert_channel(c, n, "webhook", r, 1.0))
    snapshot = await build_snapshot(Config(Settings()), store)
    assert set(snapshot.channels) == {"d", "e", "f"}
