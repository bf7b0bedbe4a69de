"""Pure rendering: an event becomes a Message (title, one-line summary, a few fields, a link)."""

from __future__ import annotations

from typing import Any

from alertd.model import Event, Message

MAX_FIELDS = 10
MAX_FIELD_CHARS = 200
SUMMARY_KEYS = ("summary", "message", "title", "description", "text")


def render(event: Event, delivery_id: int, attempt: int, public_url: str) -> Message:
    return Message(
        event=event,
        delivery_id=delivery_id,
        attempt=attempt,
        title=f"[{event.severity.label.upper()}] {event.name}",
        summary=summary_of(event.payload) or event.name,
        fields=fields_of(event.payload),
        link=f"{public_url.rstrip('/')}/ui/events/{event.id}",
    )


def summary_of(payload: dict[str, Any]) -> str:
    for key in SUMMARY_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:MAX_FIELD_CHARS]
    return ""


def fields_of(payload: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Top-level scalar values, in the producer's order: what fits on a card."""
    fields = []
    for key, value in payload.items():
        if key in SUMMARY_KEYS or isinstance(value, dict | list):
            continue
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        fields.append((str(key)[:60], text[:MAX_FIELD_CHARS]))
        if len(fields) == MAX_FIELDS:
            break
    return tuple(fields)
