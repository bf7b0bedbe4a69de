"""Write operations. Each runs inside the writer thread, inside a batch transaction: plain sqlite3,
no awaits, and no commit of its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from alertd.model import Attempt, Delivery, DeliveryState, Event, Origin

IDEMPOTENCY_WINDOW_S = 24 * 3600.0


class DeliveryIds:
    """The writer is the only inserter, so it can hand out delivery ids itself and insert them
    with executemany, instead of one INSERT per row to learn each lastrowid."""

    def __init__(self) -> None:
        self._next = 1

    def load(self, conn: sqlite3.Connection) -> None:
        self._next = int(conn.execute("SELECT coalesce(max(id), 0) FROM deliveries").fetchone()[0]) + 1

    def take(self, count: int) -> int:
        first = self._next
        self._next += count
        return first


@dataclass(frozen=True, slots=True)
class NewEvent:
    event: Event
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stored:
    event_id: str
    duplicate: bool
    deliveries: list[Delivery]


def insert_events(conn: sqlite3.Connection, items: Sequence[NewEvent], ids: DeliveryIds,
                  now: float) -> list[Stored]:
    results: list[Stored] = []
    event_rows: list[tuple[object, ...]] = []
    delivery_rows: list[tuple[object, ...]] = []
    for item in items:
        event = item.event
        if event.idempotency_key is not None:
            # scoped by the producer's key, so one producer can neither suppress another's events
            # nor learn their ids by guessing idempotency keys
            scoped = f"{event.source}\x1f{event.idempotency_key}"
            original = _claim_idempotency(conn, scoped, event.id, now)
            if original is not None:
                results.append(Stored(original, True, []))
                continue
        event_rows.append((event.id, event.name, int(event.severity), orjson.dumps(event.payload).decode(),
                           event.created_at, event.source, event.idempotency_key, len(item.channels)))
        deliveries = _new_deliveries(event, item.channels, ids, now, Origin.ROUTE, None)
        delivery_rows.extend(_delivery_row(d) for d in deliveries)
        results.append(Stored(event.id, False, deliveries))
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", event_rows)
    conn.executemany(_INSERT_DELIVERY, delivery_rows)
    return results


def _claim_idempotency(conn: sqlite3.Connection, key: str, event_id: str, now: float) -> str | None:
    """The original event's id if the key was used within the window; else claims the key.
    Exact under concurrency because only this thread writes, one job at a time."""
    row = conn.execute("SELECT event_id, created_at FROM idempotency WHERE key = ?", (key,)).fetchone()
    if row is not None and row[1] >= now - IDEMPOTENCY_WINDOW_S:
        return str(row[0])
    conn.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)", (key, event_id, now))
    return None


_INSERT_DELIVERY = ("INSERT INTO deliveries (id, event_id, channel, severity, state, attempts, next_attempt_at, "
                    "created_at, updated_at, origin, replay_of) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)")


def _delivery_row(d: Delivery) -> tuple[object, ...]:
    return (d.id, d.event_id, d.channel, int(d.severity), d.state.value, d.next_attempt_at, d.created_at,
            d.created_at, d.origin.value, d.replay_of)


def _new_deliveries(event: Event, channels: Sequence[str], ids: DeliveryIds, now: float, origin: Origin,
                    replay_of: int | None) -> list[Delivery]:
    first = ids.take(len(channels))
    return [Delivery(id=first + i, event_id=event.id, channel=channel, severity=event.severity,
                     next_attempt_at=now, created_at=now, origin=origin, replay_of=replay_of)
            for i, channel in enumerate(channels)]


def add_deliveries(conn: sqlite3.Connection, event: Event, targets: Sequence[tuple[str, int | None]],
                   origin: Origin, ids: DeliveryIds, now: float) -> list[Delivery]:
    """New deliveries for an existing event (replay, fallback): one per (channel, linked delivery)."""
    created = []
    for channel, linked in targets:
        created.extend(_new_deliveries(event, [channel], ids, now, origin, linked))
    conn.executemany(_INSERT_DELIVERY, [_delivery_row(d) for d in created])
    conn.execute("UPDATE events SET deliveries = deliveries + ? WHERE id = ?", (len(created), event.id))
    return created


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt: Attempt
    state: DeliveryState
    next_attempt_at: float


def record_attempt(conn: sqlite3.Connection, record: AttemptRecord, now: float) -> None:
    a = record.attempt
    conn.execute("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, http_status, error) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (a.delivery_id, a.number, a.started_at, a.duration_ms, a.outcome, a.http_status, a.error))
    conn.execute("UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, updated_at = ?, "
                 "last_error = ? WHERE id = ?",
                 (record.state.value, a.number, record.next_attempt_at, now, a.error, a.delivery_id))


def purge_idempotency(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute("DELETE FROM idempotency WHERE created_at < ?", (now - IDEMPOTENCY_WINDOW_S,)).rowcount
