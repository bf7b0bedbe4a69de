"""The embedded scheduler: one timer heap, and a loop that sleeps until the next due time (never a
per-second table scan). Check deadlines, run-time limits, outcome deadlines and retention all live on
the heap. What it decides becomes events, routed like any other."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import structlog

from alertd import checks as logic
from alertd.checks import CheckDecl, CheckState, Emit, PingKind, Transition
from alertd.clock import Clock
from alertd.config import MAX_LINK_TTL
from alertd.dispatch import Dispatcher, Job
from alertd.errors import RequestError
from alertd.incidents import Incidents
from alertd.model import Envelope, Severity, event_id_bound
from alertd.store import NewEvent, Store, Stored, StoreUnavailable
from alertd.store import scheduler_ops as ops
from alertd.store.reads import check_rows, expectation, waiting_expectations

log = structlog.get_logger("alertd.scheduler")

TimerKind = Literal["deadline", "runtime", "expectation", "retention", "incident"]
Prepare = Callable[[Sequence[Envelope], str], list[NewEvent]]
RETENTION_EVERY_S = 3600.0
RETENTION_BATCH = 500
# a used link's id outlives the longest link by a day more: a wall clock stepped back must not reopen it
LINK_ID_GRACE_S = 86400.0
TIMER_RETRY_S = 10.0
SOURCE = "scheduler"


class SchedulerError(RequestError):
    pass


@dataclass
class Check:
    decl: CheckDecl
    state: CheckState
    managed: str


class TimerHeap:
    """Entries are (due, seq, kind, key). A changed deadline pushes a new entry; stale ones are
    recognised when popped (the caller compares against the current state) and dropped."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerKind, str]] = []
        self._seq = itertools.count()

    def push(self, due: float, kind: TimerKind, key: str) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), kind, key))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[float, TimerKind, str]]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            at, _, kind, key = heapq.heappop(self._heap)
            due.append((at, kind, key))
        return due

    def __len__(self) -> int:
        return len(self._heap)


class Scheduler:
    def __init__(self, store: Store, dispatcher: Dispatcher, prepare: Prepare, clock: Clock, *,
                 retention_days: int = 30, audit_retention_days: int = 365,
                 outcome_failure_threshold: int = 3) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.prepare = prepare
        self.clock = clock
        self.retention_days = retention_days
        self.audit_retention_days = audit_retention_days
        self.outcome_failure_threshold = outcome_failure_threshold
        self.checks: dict[str, Check] = {}
        self.timers = TimerHeap()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self.incidents: Incidents | None = None
        self.committed: Callable[[Sequence[NewEvent], Sequence[Stored]], None] | None = None

    def attach(self, incidents: Incidents) -> None:
        """Escalation steps ride on this timer heap."""
        self.incidents = incidents
        incidents.schedule = lambda due, key: self._schedule(due, "incident", key)

    # ---- life cycle ----------------------------------------------------------------------------

    async def start(self, declared: Sequence[CheckDecl]) -> None:
        await self.sync_config(declared)
        for row in await check_rows(self.store.read):
            if row.name in self.checks:
                continue
            try:
                decl = CheckDecl.model_validate(row.config)
            except ValueError as exc:
                log.error("check_invalid", check=row.name, error=str(exc)[:200])
                continue
            self._adopt(Check(decl, CheckState(row.state, row.last_ping_at, row.last_start_at,  # type: ignore[arg-type]
                                               row.deadline_at, row.runtime_deadline_at, row.fail_streak),
                              row.managed))
        for key, deadline in await waiting_expectations(self.store.read):
            self.timers.push(deadline, "expectation", key)
        if self.incidents is not None:
            for due, key in await self.incidents.start():
                self.timers.push(due, "incident", key)
        self.timers.push(self.clock.now() + 60.0, "retention", "")
        self._running = True
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        self._running = False
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while self._running:
            self._wake.clear()
            for at, kind, key in self.timers.pop_due(self.clock.now()):
                try:
                    await self._fire(at, kind, key)
                except StoreUnavailable:  # nor is it lost: it fires again once the store can commit
                    log.warning("timer_deferred", kind=kind, key=key, retry_in_s=TIMER_RETRY_S)
                    self.timers.push(self.clock.now() + TIMER_RETRY_S, kind, key)
                except Exception:  # one bad timer must not stop the others
                    log.exception("timer_failed", kind=kind, key=key)
            await self.clock.wait(self._wake, self.timers.next_due())

    def _schedule(self, due: float | None, kind: TimerKind, key: str) -> None:
        if due is None:
            return
        earlier = self.timers.next_due()
        self.timers.push(due, kind, key)
        if earlier is None or due < earlier:
            self._wake.set()  # the loop is sleeping toward a later time

    async def _fire(self, at: float, kind: TimerKind, key: str) -> None:
        if kind == "retention":
            await self.purge()
            self.timers.push(self.clock.now() + RETENTION_EVERY_S, "retention", "")
        elif kind == "expectation":
            await self._expectation_deadline(key)
        elif kind == "incident":
            if self.incidents is not None:
                await self.incidents.step(key)
        else:
            async with self._locks[key]:
                check = self.checks.get(key)  # under the lock: a reload or an API change may have replaced it
                if check is None:
                    return
                current = check.state.deadline_at if kind == "deadline" else check.state.runtime_deadline_at
                if current is None or current > at:
                    return  # a stale entry: the deadline moved later since it was pushed
                step = logic.on_deadline if kind == "deadline" else logic.on_runtime_deadline
                await self._apply(check, step(check.decl, check.state, self.clock.now()), None)

    # ---- checks ---------------------------------------------------------------------------------

    def _adopt(self, check: Check) -> None:
        self.checks[check.decl.name] = check
        self._schedule(check.state.deadline_at, "deadline", check.decl.name)
        self._schedule(check.state.runtime_deadline_at, "runtime", check.decl.name)

    async def sync_config(self, declared: Sequence[CheckDecl]) -> None:
        """The TOML's checks: new ones created, changed ones updated (state kept), dropped ones removed."""
        rows = {r.name: r for r in await check_rows(self.store.read)}
        wanted = {d.name: d for d in declared}
        now = self.clock.now()
        for name, decl in wanted.items():
            if name in rows and rows[name].managed == "api":
                log.error("check_shadowed", check=name)  # the config wins: it is what operators read
            async with self._locks[name]:  # a ping in flight lands first, or finds the new Check
                await self.store.writer.submit(
                    partial(ops.upsert_check, name=name, managed="config", config=decl.model_dump(exclude_none=True),
                            now=now))
                existing = self.checks.get(name)
                row = rows.get(name)
                state = existing.state if existing else (
                    CheckState(row.state, row.last_ping_at, row.last_start_at, row.deadline_at,  # type: ignore[arg-type]
                               row.runtime_deadline_at, row.fail_streak) if row else CheckState())
                self._adopt(Check(decl, state, "config"))
        for name, row in rows.items():
            if row.managed == "config" and name not in wanted:
                async with self._locks[name]:
                    await self.store.writer.submit(partial(ops.delete_check, name=name))
                    self.checks.pop(name, None)

    async def put_check(self, decl: CheckDecl, *, create: bool) -> Check:
        async with self._locks[decl.name]:
            existing = self.checks.get(decl.name)
            if create and existing is not None:
                raise SchedulerError(409, "conflict", f"a check named {decl.name!r} exists", "name")
            if not create and existing is None:
                raise SchedulerError(404, "not_found", f"no check named {decl.name!r}")
            if existing is not None and existing.managed == "config":
                raise SchedulerError(409, "managed_by_config", f"check {decl.name!r} is declared in the config "
                                                               "file; change it there and reload")
            await self.store.writer.submit(lambda c: ops.upsert_check(
                c, decl.name, "api", decl.model_dump(exclude_none=True), self.clock.now()))
            check = Check(decl, existing.state if existing else CheckState(), "api")
            self._adopt(check)
            return check

    async def delete_check(self, name: str) -> None:
        async with self._locks[name]:
            self._api_check(name)
            await self.store.writer.submit(lambda c: ops.delete_check(c, name))
            self.checks.pop(name, None)

    def _api_check(self, name: str) -> Check:
        check = self.checks.get(name)
        if check is None:
            raise SchedulerError(404, "not_found", f"no check named {name[:60]!r}")
        if check.managed == "config":
            raise SchedulerError(409, "managed_by_config",
                                 f"check {name!r} is declared in the config file; change it there and reload")
        return check

    async def set_paused(self, name: str, paused: bool) -> Check:
        async with self._locks[name]:
            check = self.checks.get(name)
            if check is None:
                raise SchedulerError(404, "not_found", f"no check named {name[:60]!r}")
            state = logic.pause(check.state) if paused else logic.resume(check.state)
            await self._apply(check, Transition(state), None)
            return check

    async def ping(self, name: str, kind: PingKind, exit_status: int | None, body: str | None,
                   source: str) -> Check:
        async with self._locks[name]:
            check = self.checks.get(name)
            if check is None:
                raise SchedulerError(404, "not_found", f"no check named {name[:60]!r}")
            now = self.clock.now()
            ping = ops.Ping(name, kind, exit_status, now, source, body)
            await self._apply(check, logic.on_ping(check.decl, check.state, kind, now), ping)
            return check

    async def _apply(self, check: Check, transition: Transition, ping: ops.Ping | None) -> None:
        """Persists the new state, the ping and the emitted events in one transaction, then offers
        the deliveries and re-arms the timers."""
        events = self._events(transition.emits)
        # the clock decides when timers fire; rows the dispatcher reads carry wall time
        name, state, now = check.decl.name, transition.state, time.time()
        stored = await self.store.writer.submit(
            lambda c: ops.apply_check(c, name, state, ping, events, self.store.ids, now))
        check.state = state
        self._offer(events, stored)
        self._schedule(state.deadline_at, "deadline", name)
        self._schedule(state.runtime_deadline_at, "runtime", name)
        for emit in transition.emits:
            log.info("check_event", check=name, emitted=emit.name, state=state.state)

    def _events(self, emits: Sequence[Emit]) -> list[NewEvent]:
        if not emits:
            return []
        return self.prepare([Envelope(e.name, e.payload, e.severity) for e in emits], SOURCE)

    def _offer(self, events: Sequence[NewEvent], stored: Sequence[Stored]) -> None:
        if self.committed is not None:
            self.committed(events, stored)  # the same after-commit path as a producer's events
            return
        for item, result in zip(events, stored, strict=True):
            if not result.duplicate:
                self.dispatcher.offer(Job(d, item.event) for d in result.deliveries)

    # ---- expectations and outcomes --------------------------------------------------------------

    async def expect(self, key: str, deadline_at: float, severity: Severity, payload: dict[str, Any],
                     group: str | None, source: str) -> None:
        if deadline_at <= self.clock.now():
            raise SchedulerError(400, "invalid_body", "the deadline has already passed", "deadline")
        now = self.clock.now()
        created = await self.store.writer.submit(lambda c: ops.insert_expectation(
            c, key, group, deadline_at, int(severity), payload, source, now))
        if not created:
            raise SchedulerError(409, "conflict", f"an expectation {key[:60]!r} is already waiting", "key")
        self._schedule(deadline_at, "expectation", key)

    async def outcome(self, key: str, success: bool, payload: dict[str, Any], source: str,
                      is_admin: bool) -> ops.Resolution:
        found = await expectation(self.store.read, key)
        if found is None:
            raise SchedulerError(404, "not_found", f"no expectation {key[:60]!r}", "key")
        if found["source"] != source and not is_admin:
            raise SchedulerError(403, "forbidden", "only the key that created an expectation reports its outcome")
        resolution = await self._resolve(key, "met" if success else "failed", found, payload)
        if resolution.state != "waiting":
            raise SchedulerError(409, "conflict", f"expectation {key[:60]!r} is already {resolution.state}", "key")
        return resolution

    async def _expectation_deadline(self, key: str) -> None:
        found = await expectation(self.store.read, key)
        if found is None or found["state"] != "waiting" or found["deadline_at"] > self.clock.now():
            return
        await self._resolve(key, "timed_out", found, {})

    async def _resolve(self, key: str, new_state: str, found: dict[str, Any],
                       outcome_payload: dict[str, Any]) -> ops.Resolution:
        prepared: list[NewEvent] = []

        def events_for(resolution: ops.Resolution) -> list[NewEvent]:
            emits = self._outcome_emits(key, new_state, found, outcome_payload, resolution)
            # replaced, not extended: the writer may run this op twice (a group commit re-run job by job)
            prepared[:] = self._events(emits)
            return prepared

        now = time.time()
        resolution, stored = await self.store.writer.submit(
            lambda c: ops.resolve_expectation(c, key, new_state, now, events_for, self.store.ids))
        self._offer(prepared, stored)
        return resolution

    def _outcome_emits(self, key: str, new_state: str, found: dict[str, Any], outcome_payload: dict[str, Any],
                       resolution: ops.Resolution) -> list[Emit]:
        severity = Severity(found["severity"])
        base = {**found["payload"], "key": key, "group": found["group"]}
        emits = []
        if new_state == "timed_out":
            emits.append(Emit("alertd.outcome.timeout", severity,
                              {**base, "summary": f"no outcome for {key} by its deadline"}))
        if new_state != "met" and resolution.streak == self.outcome_failure_threshold:
            emits.append(Emit("alertd.outcome.consecutive_failures", severity,
                              {**base, **outcome_payload, "streak": resolution.streak,
                               "summary": f"{resolution.streak} failed outcomes in a row for {found['group']}"}))
        return emits

    # ---- retention ------------------------------------------------------------------------------

    async def purge(self) -> int:
        """History older than retention_days goes in small batches, yielding between them."""
        now = self.clock.now()
        bound = event_id_bound(now - self.retention_days * 86400)
        removed = 0
        while True:
            count = await self.store.writer.submit(
                lambda c: ops.purge_before(c, bound, RETENTION_BATCH, now - MAX_LINK_TTL))
            removed += count
            if count < RETENTION_BATCH:
                break
            await asyncio.sleep(0.01)
        await self.store.writer.submit(lambda c: ops.purge_side_tables(
            c, now - self.retention_days * 86400, now - self.audit_retention_days * 86400,
            now - MAX_LINK_TTL - LINK_ID_GRACE_S))
        if removed:
            log.info("retention_purged", events=removed, older_than_days=self.retention_days)
        return removed
