"""Pure rendering: an event becomes a Message (title, one-line summary, a few fields, a link), optionally
through an operator's template. Producer text is data: channels escape it for their vendor's markup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from alertd.durations import iso
from alertd.model import Event, Message

TRUNCATION_MARKER = "… [truncated]"
MAX_TEMPLATE_CHARS = 8192
MAX_RENDERED_CHARS = 16384
# Sandboxed and immutable: a template can read the event, never call into Python or change anything.
_TEMPLATES = ImmutableSandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    title: Any = None  # compiled jinja2 Template or None
    body: Any = None


def compile_template(title: str | None, body: str | None) -> MessageTemplate:
    """Raises ValueError naming the part that does not compile."""
    compiled: list[Template | None] = []
    for part, source in (("title", title), ("body", body)):
        if source is None:
            compiled.append(None)
            continue
        if len(source) > MAX_TEMPLATE_CHARS:
            raise ValueError(f"template {part} is longer than {MAX_TEMPLATE_CHARS} characters")
        try:
            compiled.append(_TEMPLATES.from_string(source))
        except TemplateError as exc:
            raise ValueError(f"template {part}: {exc.message or type(exc).__name__}") from None
    return MessageTemplate(*compiled)


def _apply(template: Any, context: dict[str, Any], fallback: str) -> str:
    if template is None:
        return fallback
    try:
        text = str(template.render(context))
    except Exception:  # a template that fails on this event (sandbox, type errors) falls back, never blocks
        return fallback
    return truncate(text.strip(), MAX_RENDERED_CHARS) or fallback


def truncate(text: str, limit: int, marker: str = TRUNCATION_MARKER) -> str:
    """At most `limit` characters; a cut is visible."""
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)] + marker

MAX_FIELDS = 10
MAX_FIELD_CHARS = 200
SUMMARY_KEYS = ("summary", "message", "title", "description", "text")


def render(event: Event, delivery_id: int, attempt: int, public_url: str,
           template: MessageTemplate | None = None, actions: tuple[tuple[str, str], ...] = ()) -> Message:
    link = f"{public_url.rstrip('/')}/ui/events/{event.id}"
    title = f"[{event.severity.label.upper()}] {event.name}"
    summary = summary_of(event.payload) or event.name
    if template is not None:
        context = {"event": {"id": event.id, "name": event.name, "severity": event.severity.label,
                             "payload": event.payload, "created_at": iso(event.created_at)},
                   "link": link}
        title = _apply(template.title, context, title)
        summary = _apply(template.body, context, summary)
    if actions:
        # every channel shows the summary, so the links reach every channel; chat clients link URLs
        summary = summary + "\n" + "\n".join(f"{label}: {url}" for label, url in actions)
    return Message(event=event, delivery_id=delivery_id, attempt=attempt, title=title, summary=summary,
                   fields=fields_of(event.payload), link=link, actions=actions)


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
