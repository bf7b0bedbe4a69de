"""Domain objects → the JSON the API documents."""

from __future__ import annotations

from typing import Any

from alertd.durations import iso
from alertd.ingest import Accepted
from alertd.model import Attempt, Delivery, Event


def accepted(a: Accepted) -> dict[str, Any]:
    if a.duplicate:
        return {"id": a.id, "duplicate": True, "skipped": True}
    return {"id": a.id, "event": a.event, "severity": a.severity.label, "deliveries": a.deliveries,
            "duplicate": False}


def event(e: Event, deliveries: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": e.id, "event": e.name, "severity": e.severity.label, "payload": e.payload,
                            "created_at": iso(e.created_at), "source": e.source,
                            "idempotency_key": e.idempotency_key}
    if deliveries is not None:
        data["deliveries"] = deliveries
    return data


def delivery(d: Delivery, event_name: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": d.id, "event_id": d.event_id, "channel": d.channel, "severity": d.severity.label,
        "state": d.state.value, "attempts": d.attempts, "next_attempt_at": iso(d.next_attempt_at) if
        d.state.is_open else None, "created_at": iso(d.created_at), "updated_at": iso(d.updated_at or None),
        "origin": d.origin.value, "replay_of": d.replay_of, "reason": d.reason, "reason_ref": d.reason_ref,
        "last_error": d.last_error,
    }
    if event_name is not None:
        data["event"] = event_name
    return data


def attempt(a: Attempt) -> dict[str, Any]:
    return {"number": a.number, "started_at": iso(a.started_at), "duration_ms": a.duration_ms,
            "outcome": a.outcome, "http_status": a.http_status, "error": a.error}
