"""Query-string and body parameters, each refused with a clear 400 naming it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from alertd.api.errors import ApiError
from alertd.durations import parse_instant
from alertd.model import DeliveryState, Severity
from alertd.routing import valid_pattern

MAX_LIMIT = 500
MAX_ROW_ID = 2**63 - 1  # SQLite's largest integer: a bigger id cannot name a row (and overflows its binding)


def row_id(raw: str) -> int | None:
    """A row id as written in a path, a query or a form, or None: ASCII digits only ("²" is a digit to
    str.isdigit, not to int), and no larger than SQLite can hold (a bigger one overflows its binding)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value <= MAX_ROW_ID else None


def bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, field)


def limit(query: Mapping[str, str], default: int = 50) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def instant(query: Mapping[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return parse_instant(raw, time.time())
    except ValueError as exc:
        raise bad(name, str(exc)) from None


def severity(query: Mapping[str, str], name: str) -> Severity | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return Severity.parse(raw)
    except ValueError as exc:
        raise bad(name, str(exc)) from None


def state(query: Mapping[str, str]) -> DeliveryState | None:
    raw = query.get("state")
    if raw is None:
        return None
    try:
        return DeliveryState(raw)
    except ValueError:
        raise bad("state", "state must be one of " + ", ".join(s.value for s in DeliveryState)) from None


def pattern(query: Mapping[str, str], name: str = "event") -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not valid_pattern(raw):
        raise bad(name, "event must be an event name, 'prefix.*' or '*'")
    return raw


def int_cursor(query: Mapping[str, str]) -> int | None:
    raw = query.get("cursor")
    if raw is None:
        return None
    cursor = row_id(raw)
    if cursor is None:
        raise bad("cursor", "cursor must be the next_cursor value of a previous page")
    return cursor


def event_cursor(query: Mapping[str, str]) -> str | None:
    raw = query.get("cursor")
    if raw is None:
        return None
    if not raw.startswith("evt_") or len(raw) != 30:
        raise bad("cursor", "cursor must be the next_cursor value of a previous page")
    return raw


def body_object(data: Any, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    """The body as an object; with `allowed`, an unknown key is refused (a typo never silently
    changes what a call does)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object", "body")
    if allowed is not None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ApiError(400, "invalid_body", f"unknown field {unknown[0][:40]!r}; allowed: "
                           + ", ".join(sorted(allowed)), unknown[0][:40])
    return data


def delivery_ids(body: Mapping[str, Any], most: int) -> list[int]:
    """`ids` in a body: 1 to `most` delivery ids, each a positive integer SQLite can hold."""
    ids = body.get("ids")
    if (not isinstance(ids, list) or not 1 <= len(ids) <= most
            or not all(type(i) is int and 0 < i <= MAX_ROW_ID for i in ids)):
        raise ApiError(400, "invalid_body", f"ids must be a list of 1 to {most} delivery ids", "ids")
    return ids
