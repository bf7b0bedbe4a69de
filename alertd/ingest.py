"""Ingest: envelope → validated, redacted event → one committed transaction → the dispatcher."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alertd.auth import ApiKey
from alertd.dedup import DEFAULT_TEMPLATE, DedupKey, compile_dedup_key
from alertd.dispatch import Dispatcher, Job
from alertd.errors import RequestError
from alertd.metrics import NO_METRICS, MetricHooks
from alertd.model import Envelope, Event, Severity, new_event_id
from alertd.redact import SensitiveKeys, redact
from alertd.routing import Route, channels_for, pattern_matches, valid_event_name
from alertd.silences import NO_SILENCES, SilenceSet
from alertd.store import NewEvent, Store, Stored
from alertd.store.ops import DedupClaim

if TYPE_CHECKING:  # incidents builds on ingest; ingest only hands it what was committed
    from alertd.incidents import Incidents

MAX_DEPTH = 32
MAX_IDEMPOTENCY_KEY = 200
ENVELOPE_FIELDS = frozenset({"event", "payload", "severity", "idempotency_key", "actions"})
ACTION_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
MAX_ACTIONS = 10


class IngestError(RequestError):
    pass


def invalid(message: str, field: str) -> IngestError:
    return IngestError(400, "invalid_event", message, field)


def parse_envelope(raw: Any, where: str = "", default_severity: Callable[[str], Severity] | None = None,
                   check_depth: bool = True) -> Envelope:
    """Validates one envelope. `where` prefixes field names in errors (e.g. "[3]." in a batch);
    a missing severity is `default_severity(name)` (the event catalog's), else info. `check_depth`
    False: the caller saw the raw body and `may_nest_too_deep` said no."""
    if not isinstance(raw, dict):
        raise invalid("an event must be a JSON object", where.rstrip(".") or "body")
    if not raw.keys() <= ENVELOPE_FIELDS:
        name = sorted(raw.keys() - ENVELOPE_FIELDS)[0][:40]
        raise invalid(f"unknown field {name!r}; allowed: event, payload, severity, idempotency_key, actions",
                      where + name)
    name = _event_name(raw.get("event"), where)
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        raise invalid("payload must be a JSON object", where + "payload")
    if check_depth and depth_exceeds(payload, MAX_DEPTH - 1):
        raise invalid(f"payload is nested deeper than {MAX_DEPTH} levels", where + "payload")
    severity = raw.get("severity")
    if severity is None:
        parsed = default_severity(name) if default_severity is not None else Severity.INFO
    else:
        parsed = _severity(severity, where)
    key = raw.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY):
        raise invalid(f"idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters",
                      where + "idempotency_key")
    actions = raw.get("actions")
    return Envelope(name, payload, parsed, key, () if actions is None else parse_actions(actions, where))


def _event_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise invalid("event is required and must be a string", where + "event")
    if not valid_event_name(name):
        raise invalid("event must be lowercase dotted words (a-z, 0-9, _ and -), at most 200 characters, "
                      "no '*'", where + "event")
    return name


def _severity(severity: Any, where: str) -> Severity:
    if not isinstance(severity, str):
        raise invalid("severity must be a string", where + "severity")
    try:
        return Severity.parse(severity)
    except ValueError as exc:
        raise invalid(str(exc), where + "severity") from None


def parse_actions(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """`[{"name": "restart-api", "label": "Restart API"}]`: approvals the event asks for."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ACTIONS:
        raise invalid(f"actions must be a list of at most {MAX_ACTIONS} objects", where + "actions")
    actions = []
    for index, item in enumerate(raw):
        field = f"{where}actions[{index}]"
        if not isinstance(item, dict) or set(item) - {"name", "label"}:
            raise invalid('an action is {"name": ..., "label": ...}', field)
        name, label = item.get("name"), item.get("label", item.get("name"))
        if not isinstance(name, str) or not ACTION_NAME_RE.match(name):
            raise invalid("name: lowercase letters, digits, _ and -, at most 64", field + ".name")
        if not isinstance(label, str) or not 1 <= len(label) <= 100:
            raise invalid("label: a string of 1 to 100 characters", field + ".label")
        actions.append((name, label))
    return tuple(actions)


def may_nest_too_deep(body: bytes) -> bool:
    """False when the raw JSON body holds too few brackets to nest past MAX_DEPTH (brackets inside
    strings only make this overcount): the common small event then skips the walk over its payload."""
    return body.count(b"{") + body.count(b"[") > MAX_DEPTH


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


@dataclass(frozen=True, slots=True)
class Reach:
    """What a set of matched routes adds up to: worked out once per set, not once per event."""

    routes: tuple[Route, ...]
    channels: tuple[str, ...]
    escalations: tuple[tuple[str, float], ...]  # (route, seconds to its first step)
    actions: frozenset[str]  # the approvals these routes allow
    dedup: bool  # some route has a dedup window

    @classmethod
    def of(cls, routes: Sequence[Route]) -> Reach:
        return cls(tuple(routes), tuple(channels_for(routes)),
                   tuple((r.name, r.escalate[0].after_s) for r in routes if r.escalate),
                   frozenset(name for r in routes for name in r.actions), any(r.suppress_for for r in routes))


class RouteTable:
    """Routes plus a cache of what a (name, severity) reaches before conditions: events repeat their
    names, so the pattern scan, and for routes without conditions everything derived from the match,
    runs once per name; only conditions run per event. Routes with a dedup window (`suppress_for`)
    have their key template compiled here, once per config."""

    CACHE_LIMIT = 8192

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        # (name, severity) → (the candidate routes, their Reach when none has conditions, else None)
        self._candidates: dict[tuple[str, Severity], tuple[tuple[Route, ...], Reach | None]] = {}
        self._keys: dict[str, DedupKey] = {
            r.name: compile_dedup_key(r.dedup_key or DEFAULT_TEMPLATE) for r in self.routes if r.suppress_for}

    def _lookup(self, name: str, severity: Severity) -> tuple[tuple[Route, ...], Reach | None]:
        key = (name, severity)
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) >= self.CACHE_LIMIT:
                self._candidates.clear()
            routes = tuple(r for r in self.routes if severity >= r.min_severity and pattern_matches(r.match, name))
            found = routes, None if any(r.conditions is not None for r in routes) else Reach.of(routes)
            self._candidates[key] = found
        return found

    def reach(self, envelope: Envelope) -> Reach:
        candidates, reach = self._lookup(envelope.event, envelope.severity)
        if reach is not None:
            return reach
        target = envelope.as_match_target()
        return Reach.of([r for r in candidates if r.conditions is None or r.conditions.matches(target)])

    def channels(self, envelope: Envelope) -> tuple[str, ...]:
        return self.reach(envelope).channels

    def new_event(self, event: Event, envelope: Envelope, silences: SilenceSet, now: float) -> NewEvent:
        """What to store for `event`: its channels and the storm control decided at routing time.
        Conditions and silences look at the envelope as sent; dedup keys render from the stored
        (redacted) payload, so a key never holds a secret."""
        reach = self.reach(envelope)
        channels = reach.channels
        if len(silences) and channels:
            silence = silences.first_match(envelope.event, envelope.as_match_target(), now)
            if silence is not None:
                return NewEvent(event, channels, silenced_by=silence.id)
        actions = tuple(a for a in envelope.actions if a[0] in reach.actions) if envelope.actions else ()
        if not reach.dedup or not channels:
            return NewEvent(event, channels, escalations=reach.escalations, actions=actions)
        claims = []
        unclaimed: set[str] = set()
        for route in reach.routes:
            render = self._keys.get(route.name)
            if render is None or route.suppress_for is None:
                unclaimed.update(route.channels)
                continue
            key = render(event.name, event.severity, event.payload)
            claims.append(DedupClaim(route.name, key, route.suppress_for, tuple(dict.fromkeys(route.channels))))
        return NewEvent(event, channels, tuple(claims), frozenset(unclaimed), escalations=reach.escalations,
                        actions=actions)


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str
    event: str
    severity: Severity
    deliveries: int
    duplicate: bool


class Ingest:
    def __init__(self, store: Store, dispatcher: Dispatcher, routes: Callable[[], RouteTable],
                 sensitive: SensitiveKeys, silences: Callable[[], SilenceSet] = lambda: NO_SILENCES) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.routes = routes  # the table in force, read per request: config swaps take effect at once
        self.sensitive = sensitive
        self.incidents: Incidents | None = None  # attached by the daemon
        self.silences = silences  # likewise the silences in force
        self.metrics: MetricHooks = NO_METRICS

    def authorize(self, key: ApiKey, envelopes: Sequence[Envelope]) -> None:
        for index, envelope in enumerate(envelopes):
            if not key.may_emit(envelope.event):
                where = f"[{index}].event" if len(envelopes) > 1 else "event"
                raise IngestError(403, "forbidden", f"key {key.name!r} may not emit {envelope.event!r}", where)

    def prepare(self, envelopes: Sequence[Envelope], source: str) -> list[NewEvent]:
        """Envelopes → events (id, redacted payload) with what to store for each. No I/O: the scheduler
        calls it for the events it emits, possibly from inside a write op."""
        now = time.time()
        routes = self.routes()
        silences = self.silences()
        items = []
        for envelope in envelopes:
            event = Event(id=new_event_id(now), name=envelope.event, severity=envelope.severity,
                          payload=redact(envelope.payload, self.sensitive), created_at=now, source=source,
                          idempotency_key=envelope.idempotency_key)
            items.append(routes.new_event(event, envelope, silences, now))
        return items

    def check_actions(self, envelopes: Sequence[Envelope]) -> None:
        """An event may ask only for approvals a route it reaches allows: nothing runs unless an
        operator declared that it may."""
        routes = self.routes()
        for index, envelope in enumerate(envelopes):
            if not envelope.actions:
                continue
            allowed = routes.reach(envelope).actions
            for name, _ in envelope.actions:
                if name not in allowed:
                    where = f"[{index}].actions" if len(envelopes) > 1 else "actions"
                    raise IngestError(400, "invalid_event", f"action {name!r} is not allowed by any route this "
                                                            "event reaches (a route lists it in `actions`)", where)

    async def accept(self, envelopes: Sequence[Envelope], source: str) -> list[Accepted]:
        """Returns only once every row is committed (the caller answers 202 then)."""
        self.check_actions(envelopes)
        items = self.prepare(envelopes, source)
        stored = await self.store.insert_events(items)
        self.committed(items, stored)
        return [Accepted(result.event_id, item.event.name, item.event.severity, len(result.deliveries),
                         result.duplicate) for item, result in zip(items, stored, strict=True)]

    def committed(self, items: Sequence[NewEvent], stored: Sequence[Stored]) -> None:
        """After any commit of new events (a producer's or the scheduler's): deliveries to the
        dispatcher, acknowledge/approve links and escalation timers to the incidents."""
        for item, result in zip(items, stored, strict=True):
            self.metrics.event_ingested(item.event.severity, result.duplicate)
            if result.duplicate:
                continue
            if self.incidents is not None and (result.incidents or result.requests):
                self.incidents.opened(item.event.id, result.incidents, result.requests)
            self.dispatcher.offer(Job(d, item.event) for d in result.deliveries)
