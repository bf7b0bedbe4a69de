"""Incidents, acknowledgements, approvals and the audit trail. Every claim is an UPDATE guarded by
the state it expects (`AND state = 'open'`), and every link's token id is recorded in the same
transaction: of twenty concurrent uses of one link, exactly one commits a change."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alertd.model import Event, Origin
from alertd.store.ops import DeliveryIds, NewEvent, Stored, add_deliveries, audit, insert_events


def claim_token(conn: sqlite3.Connection, jti: str, now: float) -> bool:
    """False if the link was used before."""
    return conn.execute("INSERT OR IGNORE INTO used_tokens (jti, used_at) VALUES (?, ?)", (jti, now)).rowcount == 1


@dataclass(frozen=True, slots=True)
class AckResult:
    outcome: str  # acked | used | not_open | missing
    state: str | None = None


def ack(conn: sqlite3.Connection, incident_id: int, actor: str, jti: str | None, now: float) -> AckResult:
    row = conn.execute("SELECT state FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    if row is None:
        return AckResult("missing")
    if jti is not None and not claim_token(conn, jti, now):
        return AckResult("used", row[0])
    changed = conn.execute("UPDATE incidents SET state = 'acked', acked_at = ?, acked_by = ?, next_step_at = NULL "
                           "WHERE id = ? AND state = 'open'", (now, actor, incident_id)).rowcount
    if not changed:
        return AckResult("not_open", row[0])
    audit(conn, "incident.acked", f"incident:{incident_id}", actor, {"via": "link" if jti else "api"}, now)
    return AckResult("acked", "acked")


def escalate(conn: sqlite3.Connection, incident_id: int, step: int, event: Event, channels: Sequence[str],
             next_step_at: float | None, ids: DeliveryIds, now: float) -> list[Any] | None:
    """Step `step` of an open incident: deliveries to the step's channels, and the next step armed.
    None if the incident was acknowledged (or the step taken) meanwhile."""
    changed = conn.execute("UPDATE incidents SET step = ?, next_step_at = ? WHERE id = ? AND state = 'open' "
                           "AND step = ?", (step + 1, next_step_at, incident_id, step)).rowcount
    if not changed:
        return None
    created = add_deliveries(conn, event, [(c, None) for c in channels], Origin.ESCALATION, ids, now)
    audit(conn, "incident.escalated", f"incident:{incident_id}", "scheduler",
          {"step": step + 1, "channels": list(channels)}, now)
    return created


@dataclass(frozen=True, slots=True)
class ApprovalResult:
    outcome: str  # approved | used | decided | missing | gone
    stored: list[Stored]


def approve(conn: sqlite3.Connection, request_id: int, actor: str, jti: str, event: NewEvent | None,
            ids: DeliveryIds, now: float) -> ApprovalResult:
    row = conn.execute("SELECT state FROM action_requests WHERE id = ?", (request_id,)).fetchone()
    if row is None:
        return ApprovalResult("missing", [])
    if event is None and row[0] == "pending":
        return ApprovalResult("gone", [])  # its event is no longer kept: nothing to approve, the link unspent
    if not claim_token(conn, jti, now):
        return ApprovalResult("used", [])
    changed = conn.execute("UPDATE action_requests SET state = 'approved', decided_at = ?, decided_by = ? "
                           "WHERE id = ? AND state = 'pending'", (now, actor, request_id)).rowcount
    if not changed or event is None:
        return ApprovalResult("decided", [])
    audit(conn, "action.approved", f"action:{request_id}", actor, {"event_id": event.event.id}, now)
    return ApprovalResult("approved", insert_events(conn, [event], ids, now))


def link_secret(conn: sqlite3.Connection, fresh: bytes) -> bytes:
    """The key links are signed with: made once, kept in the store so links survive restarts."""
    conn.execute("INSERT OR IGNORE INTO kv (key, value) VALUES ('link_secret', ?)", (fresh.hex(),))
    return bytes.fromhex(conn.execute("SELECT value FROM kv WHERE key = 'link_secret'").fetchone()[0])
