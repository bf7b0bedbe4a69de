"""Scheduler writes. A state change and the events it emits commit in one transaction, so a crash
leaves both or neither: a restart never loses a firing and never repeats one."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from alertd.checks import CheckState
from alertd.store.ops import DeliveryIds, NewEvent, Stored, insert_events


@dataclass(frozen=True, slots=True)
class Ping:
    check: str
    kind: str
    exit_status: int | None
    received_at: float
    source: str
    body: str | None


def upsert_check(conn: sqlite3.Connection, name: str, managed: str, config: dict[str, Any], now: float) -> None:
    conn.execute(
        "INSERT INTO checks (name, managed, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET managed = excluded.managed, config = excluded.config, "
        "updated_at = excluded.updated_at",
        (name, managed, orjson.dumps(config).decode(), now, now))


def delete_check(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM checks WHERE name = ?", (name,)).rowcount == 1


def apply_check(conn: sqlite3.Connection, name: str, st: CheckState, ping: Ping | None,
                events: Sequence[NewEvent], ids: DeliveryIds, now: float) -> list[Stored]:
    conn.execute(
        "UPDATE checks SET state = ?, last_ping_at = ?, last_start_at = ?, deadline_at = ?, "
        "runtime_deadline_at = ?, fail_streak = ?, updated_at = ? WHERE name = ?",
        (st.state, st.last_ping_at, st.last_start_at, st.deadline_at, st.runtime_deadline_at, st.fail_streak,
         now, name))
    if ping is not None:
        conn.execute("INSERT INTO pings (check_name, kind, exit_status, received_at, source, body) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (ping.check, ping.kind, ping.exit_status, ping.received_at, ping.source, ping.body))
    return insert_events(conn, events, ids, now) if events else []


def insert_expectation(conn: sqlite3.Connection, key: str, group: str | None, deadline_at: float, severity: int,
                       payload: dict[str, Any], source: str, now: float) -> bool:
    """False if an expectation with that key is still waiting; a resolved one is replaced."""
    row = conn.execute("SELECT state FROM expectations WHERE key = ?", (key,)).fetchone()
    if row is not None and row[0] == "waiting":
        return False
    conn.execute("INSERT OR REPLACE INTO expectations (key, grp, deadline_at, severity, payload, state, source, "
                 "created_at, resolved_at) VALUES (?, ?, ?, ?, ?, 'waiting', ?, ?, NULL)",
                 (key, group, deadline_at, severity, orjson.dumps(payload).decode(), source, now))
    return True


@dataclass(frozen=True, slots=True)
class Resolution:
    state: str  # what the expectation was before: waiting | met | failed | timed_out | missing
    group: str | None
    source: str
    streak: int  # the group's consecutive failures after this outcome


def resolve_expectation(conn: sqlite3.Connection, key: str, new_state: str, now: float,
                        events_for: Any, ids: DeliveryIds) -> tuple[Resolution, list[Stored]]:
    """Claims a waiting expectation (`AND state = 'waiting'` makes an outcome racing the timeout count
    once), moves its group's failure streak, and inserts what `events_for(resolution)` says to emit."""
    row = conn.execute("SELECT state, grp, source FROM expectations WHERE key = ?", (key,)).fetchone()
    if row is None:
        return Resolution("missing", None, "", 0), []
    if row[0] != "waiting":
        return Resolution(row[0], row[1], row[2], 0), []
    conn.execute("UPDATE expectations SET state = ?, resolved_at = ? WHERE key = ? AND state = 'waiting'",
                 (new_state, now, key))
    streak = _move_streak(conn, row[1], failed=new_state != "met", now=now)
    resolution = Resolution("waiting", row[1], row[2], streak)
    events = events_for(resolution)
    return resolution, insert_events(conn, events, ids, now) if events else []


def _move_streak(conn: sqlite3.Connection, group: str | None, *, failed: bool, now: float) -> int:
    if group is None:
        return 0
    conn.execute("INSERT INTO outcome_groups (grp, fail_streak, updated_at) VALUES (?, ?, ?) "
                 "ON CONFLICT(grp) DO UPDATE SET fail_streak = CASE WHEN ? THEN fail_streak + 1 ELSE 0 END, "
                 "updated_at = excluded.updated_at", (group, 1 if failed else 0, now, failed))
    return int(conn.execute("SELECT fail_streak FROM outcome_groups WHERE grp = ?", (group,)).fetchone()[0])


def purge_before(conn: sqlite3.Connection, event_id_bound: str, batch: int, requests_since: float = 0.0) -> int:
    """Deletes up to `batch` events older than the bound, with their deliveries and attempts.
    Small batches keep each write transaction short, so ingest never waits long behind retention.
    An event with open deliveries (a backlog, a replay, a retried dead letter), an open incident, or an
    approval still pending and made since `requests_since` (its link may still be used) stays until that
    closes: retention must never drop an obligation."""
    ids = [r[0] for r in conn.execute(
        "SELECT e.id FROM events e WHERE e.id < ? AND NOT EXISTS (SELECT 1 FROM deliveries d "
        "WHERE d.event_id = e.id AND d.state IN ('pending', 'retrying')) "
        "AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.event_id = e.id AND i.state = 'open') "
        "AND NOT EXISTS (SELECT 1 FROM action_requests a WHERE a.event_id = e.id AND a.state = 'pending' "
        "AND a.created_at >= ?) LIMIT ?",
        (event_id_bound, requests_since, batch))]
    if not ids:
        return 0
    # purging can remove the highest delivery id; remember it, so ids are never handed out twice
    conn.execute("INSERT INTO kv (key, value) SELECT 'delivery_id_floor', coalesce(max(id), 0) FROM deliveries "
                 "WHERE true ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER), "
                 "CAST(excluded.value AS INTEGER))")
    marks = ",".join("?" * len(ids))
    conn.execute(f"DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id IN ({marks}))",
                 ids)
    conn.execute(f"DELETE FROM deliveries WHERE event_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM events WHERE id IN ({marks})", ids)
    return len(ids)


def purge_side_tables(conn: sqlite3.Connection, before: float, audit_before: float, tokens_before: float) -> None:
    """`tokens_before`: a used link's id only has to outlive the link itself (issued ≤ used, and a link
    expires at most MAX_LINK_TTL after it was issued); older ids can never be presented validly again.
    The caller adds a grace period for a wall clock stepped back."""
    conn.execute("DELETE FROM pings WHERE received_at < ?", (before,))
    conn.execute("DELETE FROM used_tokens WHERE used_at < ?", (tokens_before,))
    conn.execute("DELETE FROM expectations WHERE state != 'waiting' AND resolved_at < ?", (before,))
    conn.execute("DELETE FROM audit WHERE at < ?", (audit_before,))
