"""Pure routing: which routes, and so which channels, an event reaches."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from alertd.conditions import ConditionSet
from alertd.model import Severity

# \Z, not $: `$` also matches before a trailing newline, which would let "pr.x\n" through
EVENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*\Z")
PATTERN_RE = re.compile(r"^(\*|[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*(\.\*)?)\Z")
MAX_EVENT_NAME = 200


@lru_cache(maxsize=8192)  # producers repeat a handful of names: the regex runs once per name
def valid_event_name(name: str) -> bool:
    return 0 < len(name) <= MAX_EVENT_NAME and EVENT_NAME_RE.match(name) is not None


def valid_pattern(pattern: str) -> bool:
    return len(pattern) <= MAX_EVENT_NAME and PATTERN_RE.match(pattern) is not None


def pattern_error(pattern: str) -> str:
    """What to say when valid_pattern refuses `pattern` (cut: it may be hostile)."""
    return f"{pattern[:60]!r} is not an event name, 'prefix.*' or '*'"


def pattern_matches(pattern: str, name: str) -> bool:
    """`*` matches everything, `a.b.*` matches `a.b.x` and deeper (not `a.b` itself), else exact."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def any_pattern_matches(patterns: Iterable[str], name: str) -> bool:
    return any(pattern_matches(p, name) for p in patterns)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    match: str
    channels: tuple[str, ...]
    min_severity: Severity = Severity.INFO
    priority: int = 100
    conditions: ConditionSet | None = None
    suppress_for: float | None = None  # dedup window: later matches with the same dedup key are skipped
    dedup_key: str | None = None  # template like "{event}:{payload.cue_id}"; default "{event}"
    escalate: tuple[EscalationStep, ...] = ()
    actions: tuple[str, ...] = ()  # approval action names events sent through this route may carry
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class EscalationStep:
    after_s: float
    channels: tuple[str, ...]


def sort_routes(routes: Iterable[Route]) -> tuple[Route, ...]:
    """Lower priority number runs first; ties keep declaration order (sorted() is stable)."""
    return tuple(sorted(routes, key=lambda r: r.priority))


def match_routes(routes: Sequence[Route], name: str, severity: Severity,
                 target: dict[str, Any] | None = None) -> list[Route]:
    """Every route that matches fans out. `routes` must already be in priority order.
    `target` is the envelope dict conditions look into; routes with conditions need it."""
    matched = []
    for route in routes:
        if severity < route.min_severity or not pattern_matches(route.match, name):
            continue
        if route.conditions is not None and not route.conditions.matches(target or {}):
            continue
        matched.append(route)
    return matched


def channels_for(routes: Sequence[Route]) -> list[str]:
    """The channels the matched routes reach, in route order; a channel reached twice gets one delivery."""
    seen: dict[str, None] = {}
    for route in routes:
        for channel in route.channels:
            seen.setdefault(channel, None)
    return list(seen)


@dataclass(frozen=True, slots=True)
class RouteVerdict:
    route: Route
    matched: bool
    reasons: tuple[str, ...]  # why it did not match; empty when it did
    conditions: tuple[Any, ...] = ()  # ConditionResult per condition, when the route has any


def explain_route(route: Route, name: str, severity: Severity, target: dict[str, Any]) -> RouteVerdict:
    """Why a route does or does not take an event: the pattern, the severity floor, each condition."""
    reasons = []
    if not pattern_matches(route.match, name):
        reasons.append(f"event {name!r} does not match {route.match!r}")
    if severity < route.min_severity:
        reasons.append(f"severity {severity.label} is below the floor {route.min_severity.label}")
    results: tuple[Any, ...] = ()
    if route.conditions is not None:
        results = tuple(route.conditions.explain(target))
        if not route.conditions.matches(target):
            failed = [r for r in results if not r.passed]
            reasons.extend(f"{r.index}: {r.reason}" for r in failed[:10])
            if not failed:
                reasons.append("no group of `any` holds")
    return RouteVerdict(route, not reasons, tuple(reasons), results)
