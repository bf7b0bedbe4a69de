"""Read queries, on a read connection of their own (WAL lets them run beside the writer)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from alertd.model import Attempt, Delivery, DeliveryState, Event, Origin, Severity, event_id_bound

_DELIVERY_COLUMNS = ("d.id, d.event_id, d.channel, d.severity, d.state, d.attempts, d.next_attempt_at, "
                     "d.created_at, d.origin, d.replay_of, d.last_error, d.reason, d.updated_at, d.budget_from, "
                     "d.reason_ref")
_EVENT_COLUMNS = "id, name, severity, payload, created_at, source, idempotency_key"


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    return Delivery(id=row[0], event_id=row[1], channel=row[2], severity=Severity(row[3]),
                    state=DeliveryState(row[4]), attempts=row[5], next_attempt_at=row[6], created_at=row[7],
                    origin=Origin(row[8]), replay_of=row[9], last_error=row[10], reason=row[11],
                    updated_at=row[12], budget_from=row[13], reason_ref=row[14])


def event_from_row(row: Sequence[Any]) -> Event:
    return Event(id=row[0], name=row[1], severity=Severity(row[2]), payload=orjson.loads(row[3]),
                 created_at=row[4], source=row[5], idempotency_key=row[6])


@dataclass(frozen=True, slots=True)
class EventFilter:
    pattern: str | None = None
    severity: Severity | None = None
    min_severity: Severity | None = None
    since: float | None = None
    until: float | None = None
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    state: DeliveryState | None = None
    channel: str | None = None
    pattern: str | None = None
    since: float | None = None
    until: float | None = None
    cursor: int | None = None
    limit: int = 50


def _pattern_clause(column: str, pattern: str | None) -> tuple[str, list[Any]]:
    if pattern is None or pattern == "*":
        return "", []
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        # '/' sorts right after '.', so this is "starts with prefix" as an index-friendly range
        return f" AND {column} >= ? AND {column} < ?", [prefix, prefix[:-1] + "/"]
    return f" AND {column} = ?", [pattern]


class Reader:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, path: str | Path) -> Reader:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        await conn.execute("PRAGMA busy_timeout=5000")
        return cls(conn)

    async def close(self) -> None:
        await self.conn.close()

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def due_ids(self, now: float, limit: int, channel: str) -> list[int]:
        """The ids of a channel's due work, most urgent first: cheap to read past what memory already holds."""
        rows = await self._all(
            "SELECT d.id FROM deliveries d INDEXED BY deliveries_channel_due "
            "WHERE d.state IN ('pending', 'retrying') AND d.channel = ? AND d.next_attempt_at <= ? "
            "ORDER BY d.severity DESC, d.next_attempt_at, d.id LIMIT ?", (channel, now, limit))
        return [r[0] for r in rows]

    async def deliveries_by_id(self, ids: Sequence[int]) -> list[Delivery]:
        found: dict[int, Delivery] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for row in await self._all(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.id IN ({marks}) "
                                       "AND d.state IN ('pending', 'retrying')", chunk):
                found[row[0]] = delivery_from_row(row)
        return [found[i] for i in ids if i in found]

    async def upcoming_deliveries(self, now: float, limit: int, channel: str) -> list[Delivery]:
        """A channel's open work not yet due (retries waiting out their backoff), soonest first."""
        rows = await self._all(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d INDEXED BY deliveries_channel_due "
            "WHERE d.state IN ('pending', 'retrying') AND d.channel = ? AND d.next_attempt_at > ? "
            "ORDER BY d.next_attempt_at, d.id LIMIT ?", (channel, now, limit))
        return [delivery_from_row(r) for r in rows]

    async def open_by_channel(self) -> dict[str, int]:
        """Open deliveries (due or not) per channel."""
        rows = await self._all("SELECT channel, count(*) FROM deliveries INDEXED BY deliveries_channel_due "
                               "WHERE state IN ('pending', 'retrying') GROUP BY channel")
        return {row[0]: row[1] for row in rows}

    async def open_counts(self, now: float) -> dict[str, int]:
        rows = await self._all(
            "SELECT count(*), coalesce(sum(next_attempt_at <= ?), 0) FROM deliveries "
            "WHERE state IN ('pending', 'retrying')", (now,))
        return {"open": rows[0][0], "due": rows[0][1]}

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for row in await self._all(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id IN ({marks})", chunk):
                event = event_from_row(row)
                found[event.id] = event
        return found

    async def event(self, event_id: str) -> Event | None:
        found = await self.events_by_id([event_id])
        return found.get(event_id)

    async def list_events(self, f: EventFilter) -> list[tuple[Event, int]]:
        sql = f"SELECT {_EVENT_COLUMNS}, deliveries FROM events WHERE 1=1"
        params: list[Any] = []
        clause, extra = _pattern_clause("name", f.pattern)
        sql += clause
        params += extra
        if f.severity is not None:
            sql, params = sql + " AND severity = ?", [*params, int(f.severity)]
        if f.min_severity is not None:
            sql, params = sql + " AND severity >= ?", [*params, int(f.min_severity)]
        if f.since is not None:
            sql, params = sql + " AND id >= ?", [*params, event_id_bound(f.since)]
        if f.until is not None:
            sql, params = sql + " AND id < ?", [*params, event_id_bound(f.until)]
        if f.cursor is not None:
            sql, params = sql + " AND id < ?", [*params, f.cursor]
        sql += " ORDER BY id DESC LIMIT ?"
        rows = await self._all(sql, [*params, f.limit])
        return [(event_from_row(r), r[7]) for r in rows]

    async def deliveries_for_event(self, event_id: str) -> list[Delivery]:
        rows = await self._all(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.event_id = ? ORDER BY d.id",
                               (event_id,))
        return [delivery_from_row(r) for r in rows]

    async def attempts_for(self, delivery_ids: Sequence[int]) -> dict[int, list[Attempt]]:
        found: dict[int, list[Attempt]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return found
        marks = ",".join("?" * len(delivery_ids))
        rows = await self._all(
            "SELECT delivery_id, number, started_at, duration_ms, outcome, http_status, error FROM attempts "
            f"WHERE delivery_id IN ({marks}) ORDER BY delivery_id, number", list(delivery_ids))
        for r in rows:
            found[r[0]].append(Attempt(r[0], r[1], r[2], r[3], r[4], r[5], r[6]))
        return found

    async def delivery(self, delivery_id: int) -> Delivery | None:
        rows = await self._all(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = ?", (delivery_id,))
        return delivery_from_row(rows[0]) if rows else None

    async def list_deliveries(self, f: DeliveryFilter) -> list[tuple[Delivery, str]]:
        sql = f"SELECT {_DELIVERY_COLUMNS}, e.name FROM deliveries d JOIN events e ON e.id = d.event_id WHERE 1=1"
        params: list[Any] = []
        if f.state is not None:
            sql, params = sql + " AND d.state = ?", [*params, f.state.value]
        if f.channel is not None:
            sql, params = sql + " AND d.channel = ?", [*params, f.channel]
        clause, extra = _pattern_clause("e.name", f.pattern)
        sql, params = sql + clause, params + extra
        if f.since is not None:
            sql, params = sql + " AND d.created_at >= ?", [*params, f.since]
        if f.until is not None:
            sql, params = sql + " AND d.created_at < ?", [*params, f.until]
        if f.cursor is not None:
            sql, params = sql + " AND d.id < ?", [*params, f.cursor]
        sql += " ORDER BY d.id DESC LIMIT ?"
        rows = await self._all(sql, [*params, f.limit])
        return [(delivery_from_row(r), r[15]) for r in rows]


@dataclass(frozen=True, slots=True)
class ManagedRow:
    name: str
    config: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class KeyRow:
    name: str
    prefix: str
    sha256: str
    role: str
    events: tuple[str, ...]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    rate: str | None = None


async def api_channels(reader: Reader) -> list[ManagedRow]:
    rows = await reader._all("SELECT name, config, created_at, updated_at FROM channels "
                             "WHERE deleted_at IS NULL ORDER BY created_at, name")
    return [ManagedRow(r[0], orjson.loads(r[1]), r[2], r[3]) for r in rows]


async def api_routes(reader: Reader) -> list[ManagedRow]:
    rows = await reader._all("SELECT name, config, created_at, updated_at FROM routes ORDER BY created_at, name")
    return [ManagedRow(r[0], orjson.loads(r[1]), r[2], r[3]) for r in rows]


async def api_keys(reader: Reader) -> list[KeyRow]:
    rows = await reader._all("SELECT name, prefix, sha256, role, events, created_at, last_used_at, revoked_at, rate "
                             "FROM keys ORDER BY created_at, name")
    return [KeyRow(r[0], r[1], r[2], r[3], tuple(orjson.loads(r[4])), r[5], r[6], r[7], r[8]) for r in rows]


async def event_counts_since(reader: Reader, since: float) -> dict[str, int]:
    rows = await reader._all("SELECT name, count(*) FROM events WHERE id >= ? GROUP BY name",
                             (event_id_bound(since),))
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True, slots=True)
class CheckRow:
    name: str
    managed: str
    config: dict[str, Any]
    state: str
    last_ping_at: float | None
    last_start_at: float | None
    deadline_at: float | None
    runtime_deadline_at: float | None
    fail_streak: int


async def check_rows(reader: Reader) -> list[CheckRow]:
    rows = await reader._all("SELECT name, managed, config, state, last_ping_at, last_start_at, deadline_at, "
                             "runtime_deadline_at, fail_streak FROM checks ORDER BY name")
    return [CheckRow(r[0], r[1], orjson.loads(r[2]), *r[3:]) for r in rows]


async def recent_pings(reader: Reader, check: str, limit: int) -> list[dict[str, Any]]:
    rows = await reader._all("SELECT kind, exit_status, received_at, source, body FROM pings WHERE check_name = ? "
                             "ORDER BY id DESC LIMIT ?", (check, limit))
    return [{"kind": r[0], "exit_status": r[1], "received_at": r[2], "source": r[3], "body": r[4]} for r in rows]


async def waiting_expectations(reader: Reader) -> list[tuple[str, float]]:
    return [(r[0], r[1]) for r in await reader._all(
        "SELECT key, deadline_at FROM expectations WHERE state = 'waiting'")]


async def expectation(reader: Reader, key: str) -> dict[str, Any] | None:
    rows = await reader._all("SELECT key, grp, deadline_at, severity, payload, state, source, created_at, "
                             "resolved_at FROM expectations WHERE key = ?", (key,))
    if not rows:
        return None
    r = rows[0]
    return {"key": r[0], "group": r[1], "deadline_at": r[2], "severity": r[3], "payload": orjson.loads(r[4]),
            "state": r[5], "source": r[6], "created_at": r[7], "resolved_at": r[8]}


_INCIDENT_COLUMNS = "i.id, i.event_id, i.route, i.state, i.opened_at, i.step, i.next_step_at, i.acked_at, i.acked_by"


def _incident(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": r[0], "event_id": r[1], "route": r[2], "state": r[3], "opened_at": r[4], "step": r[5],
            "next_step_at": r[6], "acked_at": r[7], "acked_by": r[8], "event": r[9], "severity": r[10]}


async def incidents(reader: Reader, state: str | None, limit: int = 100) -> list[dict[str, Any]]:
    sql = f"SELECT {_INCIDENT_COLUMNS}, e.name, e.severity FROM incidents i JOIN events e ON e.id = i.event_id"
    params: list[Any] = []
    if state is not None:
        sql, params = sql + " WHERE i.state = ?", [state]
    rows = await reader._all(sql + " ORDER BY i.id DESC LIMIT ?", [*params, limit])
    return [_incident(r) for r in rows]


async def incident(reader: Reader, incident_id: int) -> dict[str, Any] | None:
    rows = await reader._all(f"SELECT {_INCIDENT_COLUMNS}, e.name, e.severity FROM incidents i "
                             "JOIN events e ON e.id = i.event_id WHERE i.id = ?", (incident_id,))
    return _incident(rows[0]) if rows else None


async def action_request(reader: Reader, request_id: int) -> dict[str, Any] | None:
    rows = await reader._all("SELECT id, incident_id, event_id, action, label, state, created_at, decided_at, "
                             "decided_by FROM action_requests WHERE id = ?", (request_id,))
    if not rows:
        return None
    r = rows[0]
    return {"id": r[0], "incident_id": r[1], "event_id": r[2], "action": r[3], "label": r[4], "state": r[5],
            "created_at": r[6], "decided_at": r[7], "decided_by": r[8]}


async def pending_links(reader: Reader) -> tuple[list[tuple[int, str]], list[tuple[int, str, str, float]]]:
    """Open incidents (id, event_id) and pending action requests (id, event_id, label, created_at): the
    links messages carry."""
    open_ = [(r[0], r[1]) for r in await reader._all("SELECT id, event_id FROM incidents WHERE state = 'open'")]
    pending = [(r[0], r[1], r[2], r[3]) for r in await reader._all(
        "SELECT id, event_id, label, created_at FROM action_requests WHERE state = 'pending'")]
    return open_, pending


async def audit_rows(reader: Reader, since: float | None, cursor: int | None, limit: int) -> list[dict[str, Any]]:
    sql = "SELECT id, at, what, subject, actor, detail FROM audit WHERE 1=1"
    params: list[Any] = []
    if since is not None:
        sql, params = sql + " AND at >= ?", [*params, since]
    if cursor is not None:
        sql, params = sql + " AND id < ?", [*params, cursor]
    rows = await reader._all(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
    return [{"id": r[0], "at": r[1], "what": r[2], "subject": r[3], "actor": r[4], "detail": orjson.loads(r[5])}
            for r in rows]
