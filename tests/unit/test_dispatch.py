import asyncio
import time
from collections.abc import Callable

import pytest

from alertd import dispatch
from alertd.channels.base import BaseChannel, ChannelConfig, Outcome, PermanentError, RetryableError
from alertd.dispatch import Dispatcher, Job
from alertd.model import Attempt, DeliveryState, Event, Message, Severity, new_event_id
from alertd.retry import RetryPolicy
from alertd.store import AttemptRecord, NewEvent, Store

Behaviour = Callable[[Message], Outcome]


class FakeChannel(BaseChannel):
    """Records what it was asked to send; answers with a scripted behaviour."""

    type_name = "fake"

    def __init__(self, name: str, behaviour: Behaviour | None = None, *, delay: float = 0.0,
                 **config: object) -> None:
        super().__init__(ChannelConfig(name=name, type="fake", **config), http=None)  # type: ignore[arg-type]
        self.behaviour = behaviour or (lambda m: Outcome(200))
        self.delay = delay
        self.sent: list[Message] = []

    async def send(self, message: Message) -> Outcome:
        self.sent.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.behaviour(message)


FAST = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.01)


@pytest.fixture
async def store(tmp_path):
    s = Store(tmp_path / "d.db", "normal")
    await s.open()
    yield s
    await s.close()


async def ingest(store: Store, dispatcher: Dispatcher | None, channels: tuple[str, ...],
                 severity: Severity = Severity.INFO, count: int = 1) -> list[Event]:
    events = [Event(new_event_id(), "x.y", severity, {"n": i}, time.time()) for i in range(count)]
    stored = await store.insert_events([NewEvent(e, channels) for e in events])
    if dispatcher is not None:
        for event, result in zip(events, stored, strict=True):
            dispatcher.offer(Job(d, event) for d in result.deliveries)
    return events


async def settle(store: Store, event: Event, states: set[DeliveryState], timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = await store.read.deliveries_for_event(event.id)
        if deliveries and all(d.state in states for d in deliveries):
            return deliveries
        await asyncio.sleep(0.01)
    raise AssertionError(f"deliveries of {event.id} never reached {states}")


async def test_it_delivers_and_records_one_attempt(store):
    channel = FakeChannel("a")
    dispatcher = Dispatcher(store, {"a": channel}, FAST)
    await dispatcher.start()
    [event] = await ingest(store, dispatcher, ("a",))
    [d] = await settle(store, event, {DeliveryState.DELIVERED})
    assert d.attempts == 1 and channel.sent[0].event.id == event.id
    await dispatcher.drain(1)


async def test_it_retries_a_retryable_failure_then_delivers(store):
    answers = iter([RetryableError("HTTP 500", status=500), None])

    def flaky(message: Message) -> Outcome:
        error = next(answers)
        if error:
            raise error
        return Outcome(200)

    channel = FakeChannel("a", flaky)
    dispatcher = Dispatcher(store, {"a": channel}, FAST)
    await dispatcher.start()
    [event] = await ingest(store, dispatcher, ("a",))
    [d] = await settle(store, event, {DeliveryState.DELIVERED})
    attempts = (await store.read.attempts_for([d.id]))[d.id]
    assert [(a.outcome, a.http_status) for a in attempts] == [("failed", 500), ("delivered", 200)]
    assert [m.delivery_id for m in channel.sent] == [d.id, d.id]
    await dispatcher.drain(1)


async def test_a_permanent_failure_is_dead_after_one_attempt(store):
    def refuse(message: Message) -> Outcome:
        raise PermanentError("HTTP 400: bad", status=400)

    dispatcher = Dispatcher(store, {"a": FakeChannel("a", refuse)}, FAST)
    await dispatcher.start()
    [event] = await ingest(store, dispatcher, ("a",))
    [d] = await settle(store, event, {DeliveryState.DEAD})
    assert d.attempts == 1 and d.last_error == "HTTP 400: bad"
    await dispatcher.drain(1)


async def test_retries_stop_at_max_attempts_and_a_channel_may_override_it(store):
    def fail(message: Message) -> Outcome:
        raise RetryableError("timed out")

    dispatcher = Dispatcher(store, {"a": FakeChannel("a", fail), "b": FakeChannel("b", fail, max_attempts=5)}, FAST)
    await dispatcher.start()
    [event] = await ingest(store, dispatcher, ("a", "b"))
    a, b = await settle(store, event, {DeliveryState.DEAD})
    assert (a.attempts, b.attempts) == (3, 5)
    await dispatcher.drain(1)


async def test_a_channel_bug_is_recorded_and_retried_not_fatal(store):
    def bug(message: Message) -> Outcome:
        raise KeyError("oops")

    dispatcher = Dispatcher(store, {"a": FakeChannel("a", bug)}, FAST)
    await dispatcher.start()
    [event] = await ingest(store, dispatcher, ("a",))
    [d] = await settle(store, event, {DeliveryState.DEAD})
    assert d.attempts == 3 and "internal error in channel: KeyError" in (d.last_error or "")
    await dispatcher.drain(1)


async def test_a_dead_delivery_makes_a_linked_delivery_to_the_fallback(store):
    def refuse(message: Message) -> Outcome:
        raise PermanentError("HTTP 401")

    backup = FakeChannel("backup")
    dispatcher = Dispatcher(store, {"main": FakeChannel("main", refuse, fallback="backup"), "backup": backup}, FAST)
    await dispatcher.start()
    [event] = await ingest(store, dispatcher, ("main",))
    deadline = time.monotonic() + 5
    while len(backup.sent) < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    main, fallback = await settle(store, event, {DeliveryState.DEAD, DeliveryState.DELIVERED})
    assert main.state is DeliveryState.DEAD and fallback.state is DeliveryState.DELIVERED
    assert fallback.origin.value == "fallback" and fallback.replay_of == main.id
    await dispatcher.drain(1)


async def test_critical_work_overtakes_an_info_backlog_on_a_slow_channel(store):
    channel = FakeChannel("slow", delay=0.005, concurrency=1)
    dispatcher = Dispatcher(store, {"slow": channel}, FAST)
    await dispatcher.start()
    await ingest(store, dispatcher, ("slow",), Severity.INFO, count=200)
    [critical] = await ingest(store, dispatcher, ("slow",), Severity.CRITICAL)
    await settle(store, critical, {DeliveryState.DELIVERED})
    position = [m.event.id for m in channel.sent].index(critical.id)
    assert position < 5, position
    await dispatcher.drain(0.1)


async def test_a_slow_channel_does_not_hold_up_another(store):
    stuck = FakeChannel("stuck", delay=30, concurrency=2)
    quick = FakeChannel("quick")
    dispatcher = Dispatcher(store, {"stuck": stuck, "quick": quick}, FAST)
    await dispatcher.start()
    events = await ingest(store, dispatcher, ("stuck", "quick"), count=20)
    deadline = time.monotonic() + 3
    while len(quick.sent) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(quick.sent) == 20 and len(stuck.sent) == 2
    assert events
    await dispatcher.drain(0.05)


async def test_memory_holds_a_bounded_window_and_the_store_refills_it(store):
    channel = FakeChannel("a", delay=0.001, concurrency=4)
    dispatcher = Dispatcher(store, {"a": channel}, FAST, window=50)
    await dispatcher.start()
    events = await ingest(store, dispatcher, ("a",), count=400)
    assert len(dispatcher.held) <= 50 and dispatcher.overflow
    peak = 0
    deadline = time.monotonic() + 20
    while len({m.event.id for m in channel.sent}) < 400 and time.monotonic() < deadline:
        peak = max(peak, len(dispatcher.held))
        await dispatcher.refill()
        await asyncio.sleep(0.005)
    assert {m.event.id for m in channel.sent} == {e.id for e in events}
    assert peak <= 50
    await dispatcher.drain(1)


async def test_open_deliveries_in_the_store_are_loaded_at_start(store):
    events = await ingest(store, None, ("a",), count=30)
    channel = FakeChannel("a")
    dispatcher = Dispatcher(store, {"a": channel}, FAST)
    await dispatcher.start()
    for event in events:
        await settle(store, event, {DeliveryState.DELIVERED})
    assert len(channel.sent) == 30
    await dispatcher.drain(1)


async def test_a_delivery_to_a_channel_no_longer_configured_goes_dead_with_the_reason(store):
    dispatcher = Dispatcher(store, {}, FAST)
    await dispatcher.start()
    [event] = await ingest(store, dispatcher, ("gone",))
    [d] = await settle(store, event, {DeliveryState.DEAD})
    assert d.last_error == "channel 'gone' is not configured"
    await dispatcher.drain(1)


async def test_drain_lets_in_flight_attempts_finish_and_takes_no_new_work(store):
    channel = FakeChannel("a", delay=0.2, concurrency=1)
    dispatcher = Dispatcher(store, {"a": channel}, FAST)
    await dispatcher.start()
    first, second = await ingest(store, dispatcher, ("a",), count=2)
    await asyncio.sleep(0.05)
    assert await dispatcher.drain(2.0)
    assert len(channel.sent) == 1
    await settle(store, first, {DeliveryState.DELIVERED})
    [left] = await store.read.deliveries_for_event(second.id)
    assert left.state is DeliveryState.PENDING


async def test_a_critical_retry_in_backoff_does_not_stall_due_lower_severity_work(store):
    def answer(message: Message) -> Outcome:
        if message.event.severity is Severity.CRITICAL:
            raise RetryableError("HTTP 503", status=503, retry_after=30.0)
        return Outcome(200)

    channel = FakeChannel("a", answer, concurrency=1)
    dispatcher = Dispatcher(store, {"a": channel}, FAST)
    await dispatcher.start()
    await ingest(store, dispatcher, ("a",), Severity.CRITICAL)
    [info] = await ingest(store, dispatcher, ("a",), Severity.INFO)
    await settle(store, info, {DeliveryState.DELIVERED}, timeout=2.0)
    assert dispatcher.depth_by_severity()["critical"] == 1
    await dispatcher.drain(0.1)


async def test_a_delivery_released_while_a_refill_reads_is_not_taken_again(store):
    events = await ingest(store, None, ("a",), count=1)
    [delivery] = await store.read.deliveries_for_event(events[0].id)
    dispatcher = Dispatcher(store, {"a": FakeChannel("a")}, FAST, window=100)
    dispatcher.held[delivery.id] = "a"  # in flight: its attempt's record is committing
    real_read = store.read.due_ids

    async def read_while_it_finishes(now: float, limit: int, channel: str) -> list:
        rows = await real_read(now, limit, channel)  # the snapshot still shows it pending
        dispatcher.release(delivery.id)  # ...and its record commits meanwhile
        return rows

    store.read.due_ids = read_while_it_finishes
    try:
        assert await dispatcher.refill() == 0
    finally:
        store.read.due_ids = real_read
    assert delivery.id not in dispatcher.held


# ---- one channel's backlog never holds up another's (each channel holds at most its share of the window) ----

SLOW_RETRY = RetryPolicy(max_attempts=5, base_s=60, cap_s=600)


async def test_a_channel_whose_receiver_is_down_does_not_hold_up_a_critical_to_another(store):
    # its retries waiting out their backoff used to fill the whole window: the critical stayed pending for as
    # long as they did (tens of minutes at the default backoff)
    def down(message):
        raise RetryableError("HTTP 503", status=503)

    failing, quick = FakeChannel("failing", down, concurrency=8), FakeChannel("quick")
    dispatcher = Dispatcher(store, {"failing": failing, "quick": quick}, SLOW_RETRY, window=100)
    await dispatcher.start()
    await ingest(store, dispatcher, ("failing",), count=100)
    [critical] = await ingest(store, dispatcher, ("quick",), Severity.CRITICAL)
    await settle(store, critical, {DeliveryState.DELIVERED}, timeout=2.0)
    assert dispatcher._held_by_channel["failing"] <= dispatcher.share() == 50
    await dispatcher.drain(0.05)


async def test_a_storm_on_a_rate_limited_channel_does_not_hold_up_another(store):
    # the refill slept its 30 s safety interval before loading the critical the full window turned away
    slack, pager = FakeChannel("slack", rate="1/s"), FakeChannel("pager")
    dispatcher = Dispatcher(store, {"slack": slack, "pager": pager}, SLOW_RETRY, window=100)
    await dispatcher.start()
    await ingest(store, dispatcher, ("slack",), count=150)
    [critical] = await ingest(store, dispatcher, ("pager",), Severity.CRITICAL)
    await settle(store, critical, {DeliveryState.DELIVERED}, timeout=2.0)
    assert len(slack.sent) <= 3
    await dispatcher.drain(0.05)


async def test_a_critical_overruns_its_own_full_share_and_goes_first(store):
    slow = FakeChannel("slow", rate="2/s", concurrency=1)
    dispatcher = Dispatcher(store, {"slow": slow}, SLOW_RETRY, window=100)
    await dispatcher.start()
    await ingest(store, dispatcher, ("slow",), count=150)  # 100 in memory, 50 left in the store
    assert len(dispatcher.held) == 100 and dispatcher.overflow
    [critical] = await ingest(store, dispatcher, ("slow",), Severity.CRITICAL)
    assert len(dispatcher.held) == 101  # admitted past the share: critical goes first whatever the backlog
    await settle(store, critical, {DeliveryState.DELIVERED}, timeout=3.0)
    assert len(slow.sent) <= 4
    await dispatcher.drain(0.05)


async def test_a_channel_with_a_little_room_and_an_older_backlog_does_not_crowd_out_another(store):
    # one global read of the most urgent rows was all the older channel's (the ones it held, and the ones it
    # had no room for): the other channel, its whole share free, was never loaded
    dispatcher = Dispatcher(store, {"a": FakeChannel("a"), "b": FakeChannel("b")}, FAST, window=100)  # not started
    await ingest(store, None, ("a",), count=300)
    await ingest(store, None, ("b",), count=10)
    await dispatcher.refill()
    for _ in range(3):  # `a` sends one between refills, like a rate-limited lane
        sent = next(i for i, c in dispatcher.held.items() if c == "a")
        await store.record_attempt(AttemptRecord(Attempt(sent, 1, time.time(), 1.0, "delivered", 200, None),
                                                 DeliveryState.DELIVERED, time.time()))
        dispatcher.release(sent)
        await dispatcher.refill()
    assert dispatcher._held_by_channel == {"a": 50, "b": 10}


async def test_a_record_that_failed_is_loaded_again_while_another_channel_stays_full(store, monkeypatch):
    # the timer's pass was skipped while an overflowing channel had no room: the failed record's delivery,
    # open in the store, was never tried again
    monkeypatch.setattr(dispatch, "SAFETY_REFILL_S", 0.2)
    monkeypatch.setattr(dispatch, "OVERFLOW_REFILL_S", 0.1)
    hanging, quick = FakeChannel("a", delay=1000), FakeChannel("b")
    dispatcher = Dispatcher(store, {"a": hanging, "b": quick}, SLOW_RETRY, window=100)
    real, failed = store.record_attempt, []

    def fails_once(record, fallback=None):
        if not failed:
            failed.append(record.attempt.delivery_id)
            future = asyncio.get_running_loop().create_future()
            future.set_exception(OSError("disk full"))
            return future
        return real(record, fallback)

    monkeypatch.setattr(store, "record_attempt", fails_once)
    await dispatcher.start()
    await ingest(store, dispatcher, ("a",), count=60)  # a: its share held (hanging), 10 turned away
    [event] = await ingest(store, dispatcher, ("b",))
    await settle(store, event, {DeliveryState.DELIVERED}, timeout=3.0)
    assert len(quick.sent) == 2 and failed
    await dispatcher.drain(0.05)
