"""The dispatcher: per-channel lanes, each a severity-first heap with its own workers, so a slow or
failing channel only ever holds up itself. Memory holds a bounded window of work, an equal share per
channel; the store is the queue of record, and each channel is refilled from it up to its share."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from alertd.channels.base import BaseChannel, ChannelError, PermanentError, RetryableError, parse_rate
from alertd.metrics import NO_METRICS, MetricHooks
from alertd.model import Attempt, Delivery, DeliveryState, Event, Message, Severity
from alertd.ratelimit import TokenBucket
from alertd.render import render
from alertd.retry import RetryPolicy
from alertd.store import AttemptRecord, Store

log = structlog.get_logger("alertd.dispatch")
SAFETY_REFILL_S = 30.0
MIN_SHARE = 16  # with very many channels, each still holds this many: a share of 1 would refill per delivery
OVERFLOW_REFILL_S = 1.0


@dataclass(slots=True)
class Job:
    delivery: Delivery
    event: Event


@dataclass(slots=True)
class AttemptResult:
    outcome: str
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    retryable: bool = False


class Lane:
    """One channel instance: its work, its workers, its rate. Due work waits in `ready`, most severe
    first; work not yet due (a retry in backoff) waits in `delayed` by time, so a critical retry that is
    not due yet never stands in front of due work of lower severity."""

    def __init__(self, channel: BaseChannel, dispatcher: Dispatcher) -> None:
        self.channel = channel
        self.dispatcher = dispatcher
        self.ready: list[tuple[int, float, int, Job]] = []
        self.delayed: list[tuple[float, int, Job]] = []
        self.in_flight = 0
        self.wake = asyncio.Event()
        self.workers: list[asyncio.Task[None]] = []
        self.retired = False
        self.bucket = _bucket(channel.rate)

    def push(self, job: Job) -> None:
        d = job.delivery
        if d.next_attempt_at > time.time():
            heapq.heappush(self.delayed, (d.next_attempt_at, d.id, job))
        else:
            heapq.heappush(self.ready, (-int(d.severity), d.next_attempt_at, d.id, job))
        self.wake.set()

    def _promote(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now:
            job = heapq.heappop(self.delayed)[2]
            d = job.delivery
            heapq.heappush(self.ready, (-int(d.severity), d.next_attempt_at, d.id, job))

    def start(self) -> None:
        self.workers = [t for t in self.workers if not t.done()]
        for _ in range(self.channel.config.concurrency - len(self.workers)):
            self.workers.append(asyncio.create_task(self._work(), name=f"lane-{self.channel.name}"))

    def replace(self, channel: BaseChannel) -> None:
        """A changed config: the next attempts use the new instance; the worker count follows it."""
        if channel.rate != self.channel.rate:
            self.bucket = _bucket(channel.rate)
        self.channel = channel
        self.start()
        self.wake.set()  # extra workers notice they are surplus and leave

    def retire(self) -> list[Job]:
        """The channel is gone: workers leave after their current attempt; queued work is handed back."""
        self.retired = True
        jobs = [entry[3] for entry in self.ready] + [entry[2] for entry in self.delayed]
        self.ready.clear()
        self.delayed.clear()
        self.wake.set()
        return jobs

    def _surplus(self) -> bool:
        if len(self.workers) <= self.channel.config.concurrency:  # the common case, checked per job: no scan
            return False
        alive = [t for t in self.workers if not t.done()]
        if len(alive) > self.channel.config.concurrency:
            current = asyncio.current_task()
            self.workers = [t for t in alive if t is not current]
            return True
        return False

    async def _work(self) -> None:
        while True:
            job = await self._next_due()
            if job is None:
                return
            self.in_flight += 1
            try:
                await self.dispatcher.attempt(self, job)
            except Exception:  # the delivery path never takes a worker down
                log.exception("dispatch_bug", channel=self.channel.name, delivery_id=job.delivery.id)
                self.dispatcher.release(job.delivery.id)
            finally:
                self.in_flight -= 1
                self.dispatcher.idle.set()

    async def _next_due(self) -> Job | None:
        while not self.dispatcher.stopping and not self.retired and not self._surplus():
            now = time.time()
            self._promote(now)
            if self.ready:
                # wait for the token before taking a job, not holding one: what is most urgent after the
                # wait (a critical that came in meanwhile) goes next, and a retire or drain finds it queued
                if self.bucket is not None and (wait := self.bucket.try_take(time.monotonic())) > 0:
                    await asyncio.sleep(wait)
                    continue
                return heapq.heappop(self.ready)[3]
            self.wake.clear()
            timeout = self.delayed[0][0] - now if self.delayed else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
        return None

    def depth_by_severity(self) -> dict[Severity, int]:
        counts = dict.fromkeys(Severity, 0)
        for job in [entry[3] for entry in self.ready] + [entry[2] for entry in self.delayed]:
            counts[job.delivery.severity] += 1
        return counts


def _bucket(rate: str | None) -> TokenBucket | None:
    if not rate:
        return None
    per_second = parse_rate(rate)
    return TokenBucket(per_second, burst=max(1.0, per_second))


class Dispatcher:
    def __init__(self, store: Store, channels: dict[str, BaseChannel], policy: RetryPolicy, *,
                 window: int = 10_000, public_url: str = "http://127.0.0.1:8040",
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.policy = policy
        self.window = window
        self.public_url = public_url
        self.clock = clock
        self.lanes = {name: Lane(channel, self) for name, channel in channels.items()}
        self._retiring: list[Lane] = []  # lanes of removed channels whose attempts are still out
        # delivery id → its channel, for what is in memory, in flight, or awaiting its record's commit
        self.held: dict[int, str] = {}
        self._held_by_channel: Counter[str] = Counter()
        # channels whose open work the store may hold and memory does not: all, until a refill counts
        self._overflowing: set[str] = set(self.lanes)
        # offers refused for want of room, per channel: a refill that ran meanwhile must not clear its overflow
        self._turned_away: Counter[str] = Counter()
        self.stopping = False
        self.metrics: MetricHooks = NO_METRICS
        self.idle = asyncio.Event()
        self.links: Callable[[str], tuple[tuple[str, str], ...]] = lambda event_id: ()  # ack/approve links
        self._refill_wake = asyncio.Event()
        self._refilling: list[set[int]] = []  # ids released while each running refill reads
        self._refill_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for lane in self.lanes.values():
            lane.start()
        await self.refill()
        self._refill_task = asyncio.create_task(self._refill_loop(), name="dispatch-refill")

    def update_channels(self, channels: dict[str, BaseChannel]) -> None:
        """Reconciles lanes with the channels now in force (after a reload or an API change)."""
        for name, channel in channels.items():
            lane = self.lanes.get(name)
            if lane is None:
                lane = self.lanes[name] = Lane(channel, self)
                lane.start()
            elif lane.channel is not channel:
                lane.replace(channel)
        for name in [n for n in self.lanes if n not in channels]:
            lane = self.lanes.pop(name)
            for job in lane.retire():
                self._hold(job)  # no lane now: recorded dead with the reason, replayable later
            self._retiring.append(lane)  # its attempts in flight still count, and a drain waits for them

    @property
    def overflow(self) -> bool:
        """Whether the store may hold open work memory does not (some channel overflows, or is not counted yet)."""
        return bool(self._overflowing)

    def share(self) -> int:
        """What one channel may hold: an equal part of the window (at least MIN_SHARE). One channel's backlog
        (a storm on a rate-limited channel, retries against a receiver that is down) never takes the room
        another needs."""
        return max(MIN_SHARE, self.window // max(1, len(self.lanes)))

    def _room(self, channel: str) -> int:
        return self.share() - self._held_by_channel[channel]

    def offer(self, jobs: Iterable[Job]) -> None:
        """Hot path from ingest: committed deliveries go straight into memory while their channel has room."""
        for job in jobs:
            delivery = job.delivery
            if delivery.id in self.held:  # a refill took it already: a second copy would be sent twice
                continue
            room = self._room(delivery.channel)
            # critical work may overrun its channel's share (up to twice it): it goes first whatever the backlog
            if room <= 0 and (delivery.severity is not Severity.CRITICAL or room <= -self.share()):
                self._overflowing.add(delivery.channel)
                self._turned_away[delivery.channel] += 1
                continue
            self._hold(job)

    async def take(self, delivery_ids: Iterable[int]) -> int:
        """Reopened work (a dead letter retried in place): read back from the store like a refill, so an id a
        refill took meanwhile, or that went out and closed meanwhile, is not held (and sent) a second time."""
        ids = list(delivery_ids)
        released: set[int] = set()
        self._refilling.append(released)
        try:
            rows = await self.store.read.deliveries_by_id(ids)
            taken = await self._take(rows, released)
        finally:
            self._stop_tracking(released)
        # no room for some: the store keeps them, and their channels are refilled when room comes
        left = {d.channel for d in rows if d.id not in self.held and d.id not in released}
        if left:
            self._overflowing.update(left)
            self._refill_wake.set()
        return taken

    def _stop_tracking(self, released: set[int]) -> None:
        # by identity: two reads in flight at once (a retry's and a refill's) may hold equal sets
        self._refilling = [r for r in self._refilling if r is not released]

    def _hold(self, job: Job) -> None:
        channel = job.delivery.channel
        lane = self.lanes.get(channel)
        if job.delivery.id not in self.held:  # a retry goes back into its lane still held
            self.held[job.delivery.id] = channel
            self._held_by_channel[channel] += 1
        if lane is None:
            asyncio.get_running_loop().create_task(self._unknown_channel(job))
            return
        lane.push(job)

    def release(self, delivery_id: int) -> None:
        channel = self.held.pop(delivery_id, None)
        if channel is not None:
            self._held_by_channel[channel] -= 1
            if self._held_by_channel[channel] <= 0:
                del self._held_by_channel[channel]
        for released in self._refilling:
            released.add(delivery_id)
        if channel in self._overflowing and self._room(channel) >= self.share() // 2:
            self._refill_wake.set()

    async def refill(self) -> int:
        """Loads, channel by channel and each up to its share, open work memory does not hold yet: due
        work most urgent first, then what is due soonest. Returns how many deliveries it took into memory."""
        if self.stopping:
            return 0
        # A delivery that finishes while the reads below are in flight is released from `held`, yet the
        # reads' snapshot may still show it open: it must not be taken again (it would be sent twice).
        released: set[int] = set()
        self._refilling.append(released)
        turned_away = self._turned_away.copy()
        taken = 0
        try:
            now = self.clock()
            counts = await self.store.read.open_by_channel()
            # channel by channel, each up to its share: one channel's backlog cannot crowd out another's rows
            for channel, open_count in counts.items():
                room, holding = self._room(channel), self._held_by_channel[channel]
                if room <= 0 or open_count <= holding:
                    continue
                # its most urgent rows come first, and memory holds those already: read past them
                due = await self.store.read.due_ids(now, holding + room, channel)
                taken += await self._take(await self.store.read.deliveries_by_id(
                    [i for i in due if i not in self.held][:room]), released)
                room, holding = self._room(channel), self._held_by_channel[channel]
                if room > 0 and open_count > holding:
                    taken += await self._take(
                        await self.store.read.upcoming_deliveries(now, holding + room, channel), released)
        finally:
            self._stop_tracking(released)
        # a count may predate an offer refused while the reads were in flight: that one is not in memory
        self._overflowing = {c for c, n in counts.items() if n > self._held_by_channel[c]}
        self._overflowing.update(c for c, n in self._turned_away.items() if n != turned_away[c])
        return taken

    async def _take(self, rows: list[Delivery], released: set[int]) -> int:
        room: dict[str, int] = {}
        fresh = []
        for d in rows:  # most urgent first: each channel takes what fits its share
            if d.id in self.held or d.id in released:
                continue
            left = room[d.channel] if d.channel in room else self._room(d.channel)
            if left > 0:
                fresh.append(d)
            room[d.channel] = left - 1
        if not fresh:
            return 0
        events = await self.store.read.events_by_id(list({d.event_id for d in fresh}))
        taken = 0
        for delivery in fresh:
            event = events.get(delivery.event_id)
            if event is not None and delivery.id not in self.held and delivery.id not in released:
                self._hold(Job(delivery, event))
                taken += 1
        return taken

    async def _refill_loop(self) -> None:
        while not self.stopping:
            timeout = OVERFLOW_REFILL_S if self.overflow else SAFETY_REFILL_S
            try:
                await asyncio.wait_for(self._refill_wake.wait(), timeout)
            except TimeoutError:
                pass  # the timer's pass always reads: it catches what no wake announced (a record that failed)
            else:
                if not self._worth_refilling():
                    self._refill_wake.clear()
                    continue
            self._refill_wake.clear()
            try:
                await self.refill()
            except Exception:
                log.exception("refill_failed")

    def _worth_refilling(self) -> bool:
        """Whether a wake is worth a refill: an overflowing channel has a tenth of its share free."""
        least = max(1, self.share() // 10)
        return any(self._room(c) >= least for c in self._overflowing)

    async def attempt(self, lane: Lane, job: Job) -> None:
        delivery, channel = job.delivery, lane.channel
        number = delivery.attempts + 1
        started = self.clock()
        t0 = time.monotonic()
        result = await self._send(channel, job, number)
        duration_ms = (time.monotonic() - t0) * 1000
        attempt = Attempt(delivery.id, number, started, round(duration_ms, 2), result.outcome, result.status,
                          result.error)
        state, next_at = self._decide(channel, delivery, number, result)
        self.metrics.attempt_finished(channel.name, channel.type_name, result.outcome, state, duration_ms / 1000)
        delivery.attempts, delivery.state, delivery.next_attempt_at = number, state, next_at
        delivery.last_error = result.error
        target = channel.config.fallback if state is DeliveryState.DEAD else None
        fallback = (job.event, target) if target is not None and target != channel.name else None
        committed = self.store.record_attempt(AttemptRecord(attempt, state, next_at), fallback)
        if state is DeliveryState.RETRYING:
            self._hold(job)  # back into its lane — or, if the channel went away meanwhile, recorded dead
            committed.add_done_callback(_consume)
            # receivers' answers can echo payload values: logs carry the status, the row keeps the text
            log.debug("delivery_retrying", delivery_id=delivery.id, event_id=delivery.event_id,
                      channel=channel.name, attempt=number, http_status=result.status)
            return
        committed.add_done_callback(lambda f: self._settled(f, delivery.id, job.event))
        if state is DeliveryState.DEAD:
            log.warning("delivery_dead", delivery_id=delivery.id, event_id=delivery.event_id,
                        channel=channel.name, attempts=number, http_status=result.status)

    def _settled(self, future: asyncio.Future[list[Delivery]], delivery_id: int, event: Event) -> None:
        _consume(future)
        channel = self.held.get(delivery_id)
        if channel is not None and (future.cancelled() or future.exception() is not None):
            self._overflowing.add(channel)  # its record did not commit: still open in the store, to load again
        self.release(delivery_id)
        if not future.cancelled() and future.exception() is None:
            self.offer(Job(d, event) for d in future.result())  # the fallback, committed with the dead record

    async def _send(self, channel: BaseChannel, job: Job, number: int) -> AttemptResult:
        links = self.links(job.event.id)
        if channel.renders:
            message = render(job.event, job.delivery.id, number, self.public_url, channel.template, links)
        else:
            message = Message(job.event, job.delivery.id, number, title="", summary="", actions=links)
        try:
            outcome = await channel.send(message)
        except RetryableError as exc:
            return AttemptResult("failed", exc.status, str(exc), exc.retry_after, retryable=True)
        except PermanentError as exc:
            error = str(exc) + (" (the receiver asked to be disabled)" if exc.gone else "")
            return AttemptResult("failed", exc.status, error)
        except ChannelError as exc:
            return AttemptResult("failed", exc.status, str(exc), retryable=True)
        except Exception as exc:
            log.exception("channel_bug", channel=channel.name, delivery_id=job.delivery.id)
            return AttemptResult("failed", None, f"internal error in channel: {type(exc).__name__}",
                                 retryable=True)
        return AttemptResult("delivered", outcome.status)

    def _decide(self, channel: BaseChannel, delivery: Delivery, number: int,
                result: AttemptResult) -> tuple[DeliveryState, float]:
        now = self.clock()
        if result.outcome == "delivered":
            return DeliveryState.DELIVERED, now
        max_attempts = channel.config.max_attempts or self.policy.max_attempts
        if result.retryable and number - delivery.budget_from < max_attempts:
            return DeliveryState.RETRYING, now + self.policy.delay(number, result.retry_after)
        return DeliveryState.DEAD, now

    async def _unknown_channel(self, job: Job) -> None:
        d = job.delivery
        error = f"channel {d.channel!r} is not configured"
        attempt = Attempt(d.id, d.attempts + 1, self.clock(), 0.0, "failed", None, error)
        try:
            await self.store.record_attempt(AttemptRecord(attempt, DeliveryState.DEAD, self.clock()))
            self.metrics.dead_unconfigured(d.channel)
        except Exception:
            log.exception("record_failed", delivery_id=d.id)
        finally:
            self.release(d.id)

    def depth_by_severity(self) -> dict[str, int]:
        totals = dict.fromkeys((s.label for s in Severity), 0)
        for lane in self.lanes.values():
            for severity, count in lane.depth_by_severity().items():
                totals[severity.label] += count
        return totals

    def _all_lanes(self) -> list[Lane]:
        """The lanes in force and the retired ones whose workers have not all left yet."""
        self._retiring = [lane for lane in self._retiring if any(not t.done() for t in lane.workers)]
        return [*self.lanes.values(), *self._retiring]

    @property
    def in_flight(self) -> int:
        return sum(lane.in_flight for lane in self._all_lanes())

    async def drain(self, timeout: float) -> bool:
        """Stops taking work, lets attempts in flight finish up to `timeout`; the rest stays pending
        in the store. Returns whether everything in flight finished."""
        self.stopping = True
        self._refill_wake.set()
        for lane in self.lanes.values():
            lane.wake.set()
        deadline = time.monotonic() + timeout
        while self.in_flight and (left := deadline - time.monotonic()) > 0:
            self.idle.clear()
            try:
                await asyncio.wait_for(self.idle.wait(), left)
            except TimeoutError:
                break
        finished = self.in_flight == 0
        tasks = [t for lane in self._all_lanes() for t in lane.workers]
        if self._refill_task is not None:
            tasks.append(self._refill_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return finished


def _consume(future: asyncio.Future[Any]) -> None:
    """A record that failed to commit leaves the delivery open in the store: it is tried again later
    (at-least-once). Retrieving the exception keeps asyncio from reporting it as lost."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("attempt_record_failed", error=str(future.exception()))
