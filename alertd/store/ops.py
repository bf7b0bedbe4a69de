"""Write operations. Each runs inside the writer thread, inside a batch transaction: plain sqlite3,
no awaits, and no commit of its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from alertd.model import Attempt, Delivery, DeliveryState, Event, Origin

IDEMPOTENCY_WINDOW_S = 24 * 3600.0


class DeliveryIds:
    """The writer is the only inserter, so it can hand out delivery ids itself and insert them
    with executemany, instead of one INSERT per row to learn each lastrowid."""

    def __init__(self) -> None:
        self._next = 1

    def load(self, conn: sqlite3.Connection) -> None:
        highest = int(conn.execute("SELECT coalesce(max(id), 0) FROM deliveries").fetchone()[0])
        floor = conn.execute("SELECT value FROM kv WHERE key = 'delivery_id_floor'").fetchone()
        self._next = max(highest, int(floor[0]) if floor else 0) + 1  # retention may have purged the top

    def take(self, count: int) -> int:
        first = self._next
        self._next += count
        return first


@dataclass(frozen=True, slots=True)
class DedupClaim:
    """A matched route with a window (`suppress_for`): its rendered key and the channels it reaches."""

    route: str
    key: str
    window: float
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store with one delivery per channel. Storm control, decided at routing time:
    `silenced_by` (a silence id) skips every delivery; `claims` are the dedup windows of the matched
    routes, and `unclaimed` the channels also reached by a route without one (never suppressed)."""

    event: Event
    channels: tuple[str, ...]
    claims: tuple[DedupClaim, ...] = ()
    unclaimed: frozenset[str] = frozenset()
    silenced_by: int | None = None
    escalations: tuple[tuple[str, float], ...] = ()  # (route, seconds to its first step): opens incidents
    actions: tuple[tuple[str, str], ...] = ()  # (name, label): approval requests to open


@dataclass(frozen=True, slots=True)
class Stored:
    event_id: str
    duplicate: bool
    deliveries: list[Delivery]  # to dispatch
    skipped: list[Delivery] = field(default_factory=list)  # recorded `skipped`, never dispatched
    incidents: list[tuple[int, float]] = field(default_factory=list)  # (id, first step at)
    requests: list[tuple[int, str]] = field(default_factory=list)  # (approval request id, label)


SILENCED = "silenced"
SUPPRESSED = "suppressed"


def insert_events(conn: sqlite3.Connection, items: Sequence[NewEvent], ids: DeliveryIds,
                  now: float) -> list[Stored]:
    results: list[Stored] = []
    event_rows: list[tuple[object, ...]] = []
    delivery_rows: list[tuple[object, ...]] = []
    # windows opened earlier in this call: first delivery id → channel → delivery id. Their rows are not
    # inserted yet (one executemany at the end), so an event they suppress finds its reference here.
    opened: dict[int, dict[str, int]] = {}
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
        if not (item.channels or item.escalations or item.actions):  # routed nowhere: nothing more to write
            results.append(Stored(event.id, False, []))
            continue
        deliveries = _new_deliveries(event, item.channels, ids, now, Origin.ROUTE, None)
        skipped, quiet = _storm_control(conn, item, deliveries, now, opened)
        delivery_rows.extend(_delivery_row(d) for d in deliveries)
        incidents, requests = _human_loop(conn, item, now, quiet)
        results.append(Stored(event.id, False, [d for d in deliveries if d.state is not DeliveryState.SKIPPED],
                              skipped, incidents, requests))
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", event_rows)
    conn.executemany(_INSERT_DELIVERY, delivery_rows)
    return results


def _human_loop(conn: sqlite3.Connection, item: NewEvent, now: float,
                quiet: set[str]) -> tuple[list[tuple[int, float]], list[tuple[int, str]]]:
    """Incidents for escalating routes and approval requests, in the event's own transaction: an
    event is never stored without the escalation it asked for. A route whose dedup window suppressed
    the event (`quiet`) opens none: the incident of the event that went out stands for it."""
    if item.silenced_by is not None or not (item.escalations or item.actions):
        return [], []
    incidents = []
    for route, first_after in item.escalations:
        if route in quiet:
            continue
        cursor = conn.execute("INSERT INTO incidents (event_id, route, state, opened_at, step, next_step_at) "
                              "VALUES (?, ?, 'open', ?, 0, ?)", (item.event.id, route, now, now + first_after))
        assert cursor.lastrowid is not None
        incidents.append((cursor.lastrowid, now + first_after))
        audit(conn, "incident.opened", f"incident:{cursor.lastrowid}", item.event.source,
              {"event_id": item.event.id, "route": route}, now)
    first_incident = incidents[0][0] if incidents else None
    requests = []
    for name, label in item.actions:
        cursor = conn.execute("INSERT INTO action_requests (incident_id, event_id, action, label, state, created_at) "
                              "VALUES (?, ?, ?, ?, 'pending', ?)", (first_incident, item.event.id, name, label, now))
        assert cursor.lastrowid is not None
        requests.append((cursor.lastrowid, label))
    return incidents, requests


def audit(conn: sqlite3.Connection, what: str, subject: str, actor: str, detail: dict[str, object],
          now: float) -> None:
    conn.execute("INSERT INTO audit (at, what, subject, actor, detail) VALUES (?, ?, ?, ?, ?)",
                 (now, what, subject, actor, orjson.dumps(detail).decode()))


def _storm_control(conn: sqlite3.Connection, item: NewEvent, deliveries: list[Delivery], now: float,
                   opened: dict[int, dict[str, int]]) -> tuple[list[Delivery], set[str]]:
    """Marks the deliveries a silence or an open dedup window skips; opens the windows of the routes
    that were not suppressed. Returns the skipped ones and the suppressed routes. Exact under concurrency:
    only this thread writes."""
    if item.silenced_by is not None:
        for d in deliveries:
            _skip(d, SILENCED, item.silenced_by)
        return list(deliveries), set()
    if not item.claims:
        return [], set()
    suppressed = _open_windows(conn, item.claims, now)
    skipped = []
    for d in deliveries:
        if d.channel in item.unclaimed:
            continue
        reaching = [c for c in item.claims if d.channel in c.channels]
        if reaching and all(c.route in suppressed for c in reaching):
            first = reaching[0]
            _skip(d, SUPPRESSED, _sent_on(conn, suppressed[first.route], first, d.channel, opened))
            skipped.append(d)
    sent = {d.channel: d.id for d in deliveries if d.state is not DeliveryState.SKIPPED}
    for claim in item.claims:
        first_id = sent.get(claim.channels[0]) if claim.channels else None
        if claim.route in suppressed or first_id is None:
            continue
        conn.execute("INSERT INTO dedup (route, key, delivery_id, until) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (route, key) DO UPDATE SET delivery_id = excluded.delivery_id, "
                     "until = excluded.until", (claim.route, claim.key, first_id, now + claim.window))
        opened[first_id] = sent
    return skipped, set(suppressed)


def _open_windows(conn: sqlite3.Connection, claims: Sequence[DedupClaim], now: float) -> dict[str, int]:
    """route → the delivery that went out, for each claim whose window is still open."""
    suppressed = {}
    for claim in claims:
        row = conn.execute("SELECT delivery_id, until FROM dedup WHERE route = ? AND key = ?",
                           (claim.route, claim.key)).fetchone()
        if row is not None and row[1] > now:
            suppressed[claim.route] = int(row[0])
    return suppressed


def _sent_on(conn: sqlite3.Connection, first_id: int, claim: DedupClaim, channel: str,
             opened: dict[int, dict[str, int]]) -> int:
    """The delivery that went out on this channel when the window opened. The dedup row keeps the
    first channel's; another channel's is its sibling in the same event (if the route's channels
    changed since, the first one stands in)."""
    if channel == claim.channels[0]:
        return first_id
    siblings = opened.get(first_id)
    if siblings is not None:
        return siblings.get(channel, first_id)
    row = conn.execute("SELECT s.id FROM deliveries d JOIN deliveries s ON s.event_id = d.event_id "
                       "WHERE d.id = ? AND s.channel = ? AND s.origin = 'route' ORDER BY s.id LIMIT 1",
                       (first_id, channel)).fetchone()
    return int(row[0]) if row is not None else first_id


def _skip(d: Delivery, reason: str, ref: int) -> None:
    d.state, d.reason, d.reason_ref = DeliveryState.SKIPPED, reason, ref


def _claim_idempotency(conn: sqlite3.Connection, key: str, event_id: str, now: float) -> str | None:
    """The original event's id if the key was used within the window; else claims the key.
    Exact under concurrency because only this thread writes, one job at a time."""
    row = conn.execute("SELECT event_id, created_at FROM idempotency WHERE key = ?", (key,)).fetchone()
    if row is not None and row[1] >= now - IDEMPOTENCY_WINDOW_S:
        return str(row[0])
    conn.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)", (key, event_id, now))
    return None


_INSERT_DELIVERY = ("INSERT INTO deliveries (id, event_id, channel, severity, state, attempts, next_attempt_at, "
                    "created_at, updated_at, origin, replay_of, reason, reason_ref) "
                    "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)")


def _delivery_row(d: Delivery) -> tuple[object, ...]:
    return (d.id, d.event_id, d.channel, int(d.severity), d.state.value, d.next_attempt_at, d.created_at,
            d.created_at, d.origin.value, d.replay_of, d.reason, d.reason_ref)


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


def record_attempts(conn: sqlite3.Connection, records: Sequence[tuple[AttemptRecord, float]]) -> None:
    """Each (record, when it was made): the attempt row, and its delivery's new state."""
    conn.executemany("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, http_status, "
                     "error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [(r.attempt.delivery_id, r.attempt.number, r.attempt.started_at, r.attempt.duration_ms,
                       r.attempt.outcome, r.attempt.http_status, r.attempt.error) for r, _ in records])
    conn.executemany("UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, updated_at = ?, "
                     "last_error = ? WHERE id = ?",
                     [(r.state.value, r.attempt.number, r.next_attempt_at, now, r.attempt.error, r.attempt.delivery_id)
                      for r, now in records])


def purge_idempotency(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute("DELETE FROM idempotency WHERE created_at < ?", (now - IDEMPOTENCY_WINDOW_S,)).rowcount
