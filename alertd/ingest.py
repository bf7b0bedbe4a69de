"""Ingest: envelope → validated, redacted event → one committed transaction → the dispatcher."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from alertd.auth import ApiKey
from alertd.dispatch import Dispatcher, Job
from alertd.model import Envelope, Event, Severity, new_event_id
from alertd.redact import SensitiveKeys, redact
from alertd.routing import EVENT_NAME_RE, MAX_EVENT_NAME, Route, channels_for, pattern_matches
from alertd.store import NewEvent, Store

MAX_DEPTH = 32
MAX_IDEMPOTENCY_KEY = 200
ENVELOPE_FIELDS = frozenset({"event", "payload", "severity", "idempotency_key"})


class IngestError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def invalid(message: str, field: str) -> IngestError:
    return IngestError(400, "invalid_event", message, field)


def parse_envelope(raw: Any, where: str = "", default_severity: Callable[[str], Severity] | None = None) -> Envelope:
    """Validates one envelope. `where` prefixes field names in errors (e.g. "[3]." in a batch);
    a missing severity is `default_severity(name)` (the event catalog's), else info."""
    if not isinstance(raw, dict):
        raise invalid("an event must be a JSON object", where.rstrip(".") or "body")
    unknown = raw.keys() - ENVELOPE_FIELDS
    if unknown:
        name = sorted(unknown)[0][:40]
        raise invalid(f"unknown field {name!r}; allowed: event, payload, severity, idempotency_key", where + name)
    name = raw.get("event")
    if not isinstance(name, str) or not name:
        raise invalid("event is required and must be a string", where + "event")
    if len(name) > MAX_EVENT_NAME or not EVENT_NAME_RE.match(name):
        raise invalid("event must be lowercase dotted words (a-z, 0-9, _ and -), at most 200 characters, "
                      "no '*'", where + "event")
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        raise invalid("payload must be a JSON object", where + "payload")
    if depth_exceeds(payload, MAX_DEPTH - 1):
        raise invalid(f"payload is nested deeper than {MAX_DEPTH} levels", where + "payload")
    severity = raw.get("severity")
    if severity is None:
        parsed = default_severity(name) if default_severity is not None else Severity.INFO
    elif not isinstance(severity, str):
        raise invalid("severity must be a string", where + "severity")
    else:
        try:
            parsed = Severity.parse(severity)
        except ValueError as exc:
            raise invalid(str(exc), where + "severity") from None
    key = raw.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY):
        raise invalid(f"idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters",
                      where + "idempotency_key")
    return Envelope(name, payload, parsed, key)


def depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative, so a hostile 10,000-deep document cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit and len(children):
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class RouteTable:
    """Routes plus a cache of the routes a (name, severity) reaches before conditions: events repeat
    their names, so the pattern scan runs once per name and only conditions run per event."""

    CACHE_LIMIT = 8192

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._candidates: dict[tuple[str, Severity], tuple[Route, ...]] = {}

    def candidates(self, name: str, severity: Severity) -> tuple[Route, ...]:
        key = (name, severity)
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) >= self.CACHE_LIMIT:
                self._candidates.clear()
            found = tuple(r for r in self.routes if severity >= r.min_severity and pattern_matches(r.match, name))
            self._candidates[key] = found
        return found

    def match(self, envelope: Envelope) -> list[Route]:
        candidates = self.candidates(envelope.event, envelope.severity)
        if all(r.conditions is None for r in candidates):
            return list(candidates)
        target = envelope.as_match_target()
        return [r for r in candidates if r.conditions is None or r.conditions.matches(target)]

    def channels(self, envelope: Envelope) -> tuple[str, ...]:
        return tuple(channels_for(self.match(envelope)))


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str
    event: str
    severity: Severity
    deliveries: int
    duplicate: bool


class Ingest:
    def __init__(self, store: Store, dispatcher: Dispatcher, routes: Callable[[], RouteTable],
                 sensitive: SensitiveKeys) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.routes = routes  # the table in force, read per request: config swaps take effect at once
        self.sensitive = sensitive

    def authorize(self, key: ApiKey, envelopes: Sequence[Envelope]) -> None:
        for index, envelope in enumerate(envelopes):
            if not key.may_emit(envelope.event):
                where = f"[{index}].event" if len(envelopes) > 1 else "event"
                raise IngestError(403, "forbidden", f"key {key.name!r} may not emit {envelope.event!r}", where)

    def prepare(self, envelopes: Sequence[Envelope], source: str) -> list[NewEvent]:
        """Envelopes → redacted events with their routing decided: what a write op inserts. The
        scheduler uses it too, so its events go the same way as a producer's (no side doors)."""
        now = time.time()
        routes = self.routes()
        items = []
        for envelope in envelopes:
            event = Event(id=new_event_id(now), name=envelope.event, severity=envelope.severity,
                          payload=redact(envelope.payload, self.sensitive), created_at=now, source=source,
                          idempotency_key=envelope.idempotency_key)
            items.append(NewEvent(event, routes.channels(envelope)))
        return items

    async def accept(self, envelopes: Sequence[Envelope], source: str) -> list[Accepted]:
        """Returns only once every row is committed (the caller answers 202 then)."""
        items = self.prepare(envelopes, source)
        stored = await self.store.insert_events(items)
        accepted = []
        for item, result in zip(items, stored, strict=True):
            if not result.duplicate:
                self.dispatcher.offer(Job(d, item.event) for d in result.deliveries)
            accepted.append(Accepted(result.event_id, item.event.name, item.event.severity,
                                     len(result.deliveries), result.duplicate))
        return accepted
