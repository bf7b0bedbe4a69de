"""Routes in the order they are tried, said in words, and "which routes would this event reach"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from alertd.conditions import Condition, ConditionSet
from alertd.ingest import IngestError, parse_envelope
from alertd.routing import Route, RouteVerdict, explain_route
from alertd.ui.history import SEVERITIES
from alertd.ui.web import Page, signed_in

OP_WORDS = {"eq": "=", "ne": "≠", "gt": ">", "ge": "≥", "lt": "<", "le": "≤", "in": "is one of",
            "not_in": "is none of", "contains": "contains", "matches": "matches", "exists": "exists",
            "not_exists": "does not exist"}
MAX_PAYLOAD_CHARS = 64 * 1024


def shown_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def describe(condition: Condition) -> str:
    """`payload.env is one of ["prod","staging"]`, `payload.trace exists`."""
    words = OP_WORDS.get(condition.op, condition.op)
    if condition.op in ("exists", "not_exists"):
        return f"{condition.field} {words}"
    return f"{condition.field} {words} {shown_value(condition.value)}"


def describe_set(conditions: ConditionSet | None) -> tuple[list[str], list[list[str]]]:
    """(`when` in words, each `any` group in words)."""
    if conditions is None:
        return [], []
    return [describe(c) for c in conditions.when], [[describe(c) for c in group] for group in conditions.any]


@dataclass(frozen=True, slots=True)
class RouteRow:
    route: Route
    managed: str
    when: list[str]
    any: list[list[str]]


def route_rows(page: Page) -> list[RouteRow]:
    snapshot = page.runtime.live.snapshot
    rows = []
    for route in snapshot.routes.routes:
        rows.append(RouteRow(route, snapshot.route_managed.get(route.name, "config"), *describe_set(route.conditions)))
    return rows


@signed_in
async def routes(page: Page) -> web.StreamResponse:
    return page.render("routes.html", active="routes", rows=route_rows(page), severities=SEVERITIES,
                       probe={"event": "", "severity": "", "payload": "{}"}, verdicts=None, reached=[], error="")


@signed_in
async def explain(page: Page) -> web.StreamResponse:
    """The form's envelope against every route: matched, or why not (as api.manage.test_routes)."""
    form = await page.form()
    probe = {k: form.get(k, "").strip() for k in ("event", "severity", "payload")}
    values: dict[str, Any] = {"active": "routes", "rows": route_rows(page), "severities": SEVERITIES,
                              "probe": probe, "verdicts": None, "reached": [], "error": ""}
    try:
        raw = _envelope(probe)
        snapshot = page.runtime.live.snapshot
        envelope = parse_envelope(raw, "", snapshot.default_severity)
    except (ValueError, IngestError) as exc:
        return page.render("routes.html", status=400, **{**values, "error": getattr(exc, "message", str(exc))})
    target = envelope.as_match_target()
    verdicts: list[RouteVerdict] = [explain_route(r, envelope.event, envelope.severity, target)
                                    for r in snapshot.routes.routes]
    return page.render("routes.html", **{**values, "verdicts": verdicts, "probe_severity": envelope.severity.label,
                                         "reached": list(snapshot.routes.channels(envelope)),
                                         "shown_value": shown_value})


def _envelope(probe: dict[str, str]) -> dict[str, Any]:
    if len(probe["payload"]) > MAX_PAYLOAD_CHARS:
        raise ValueError(f"payload: at most {MAX_PAYLOAD_CHARS} characters here")
    try:
        payload = orjson.loads(probe["payload"] or "{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"payload is not valid JSON: {exc}") from None
    raw: dict[str, Any] = {"event": probe["event"], "payload": payload}
    if probe["severity"]:
        raw["severity"] = probe["severity"]
    return raw
