"""Routing throughput with payload conditions: 200 routes, 10,000 events (1,000 with --quick).

Prints µs per event for routes with conditions and, as a same-run baseline, for the same routes
without them, then one JSON line. Target: under 50 µs per event on average.

    .venv/bin/python bench/routing.py [--quick] [--seed N] [--repeat N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import string
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing alertd.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alertd.conditions import parse_conditions
from alertd.model import Severity
from alertd.routing import Route, match_routes, pattern_matches, sort_routes

TARGET_US = 50.0
ROUTES = 200
PREFIXES = ("deploy", "backup", "db", "net", "auth", "billing", "queue", "cron")
SUFFIXES = ("started", "finished", "failed", "slow", "timeout", "retry")
ENVS = ("prod", "staging", "dev", "test")
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")
TEAMS = ("core", "data", "edge", "payments")

Event = tuple[str, Severity, dict[str, Any]]


def _condition(rng: random.Random, with_regex: bool) -> dict[str, Any]:
    if with_regex:
        pattern = rng.choice([r"timeout after \d+s", r"^web-\d+$", r"(?i)disk (full|failing)", r"(a+)+$"])
        return {"field": rng.choice(["payload.message", "payload.host"]), "op": "matches", "value": pattern}
    templates: list[dict[str, Any]] = [
        {"field": "payload.duration_s", "op": rng.choice(["gt", "ge", "lt", "le"]),
         "value": rng.randint(1, 7200)},
        {"field": "payload.env", "op": "in", "value": rng.sample(ENVS, 2)},
        {"field": "payload.env", "op": "not_in", "value": ["dev"]},
        {"field": "payload.region", "op": "eq", "value": rng.choice(REGIONS)},
        {"field": "payload.region", "op": "ne", "value": rng.choice(REGIONS)},
        {"field": "payload.meta.team", "op": "eq", "value": rng.choice(TEAMS)},
        {"field": "payload.meta.items.0.id", "op": "exists"},
        {"field": "payload.ticket", "op": "not_exists"},
        {"field": "payload.tags", "op": "contains", "value": rng.choice(["db", "oncall", "slo"])},
        {"field": "payload.message", "op": "contains", "value": rng.choice(["timeout", "disk", "ok"])},
        {"field": "payload.started_at", "op": "gt", "value": "2026-01-01T00:00:00Z"},
        {"field": "severity", "op": "ge", "value": rng.choice(["warning", "error"])},
        {"field": "payload.retries", "op": "gt", "value": 2},
    ]
    return rng.choice(templates)


def build_routes(rng: random.Random) -> tuple[Route, ...]:
    routes = []
    for i in range(ROUTES):
        kind = rng.random()
        if kind < 0.4:
            match = f"{rng.choice(PREFIXES)}.{rng.choice(SUFFIXES)}"
        elif kind < 0.85:
            match = f"{rng.choice(PREFIXES)}.*"
        else:
            match = "*"
        with_regex = i % 5 == 0
        when = [_condition(rng, with_regex and n == 0) for n in range(rng.randint(1, 3))]
        conditions = parse_conditions(when, route=f"r{i}")
        routes.append(Route(name=f"r{i}", match=match, channels=(f"ch{i % 17}",),
                            min_severity=Severity(rng.choice([0, 0, 1, 2, 3])),
                            priority=rng.randint(1, 200), conditions=conditions))
    return sort_routes(routes)


def _payload(rng: random.Random) -> dict[str, Any]:
    words = ["timeout after 30s", "disk full", "ok", "retrying", "connection reset", "a" * 40 + "!"]
    payload: dict[str, Any] = {
        "duration_s": rng.choice([rng.randint(0, 10_000), rng.random() * 100, "n/a"]),
        "env": rng.choice(ENVS),
        "host": f"web-{rng.randint(1, 99)}" if rng.random() < 0.7 else "db-primary",
        "message": " ".join(rng.choices(words, k=rng.randint(1, 4))),
        "tags": rng.sample(["db", "oncall", "slo", "batch", "canary"], rng.randint(0, 3)),
        "started_at": f"2026-01-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
        if rng.random() < 0.5 else "2025-12-31T12:00:00+00:00",
        "meta": {"team": rng.choice(TEAMS),
                 "items": [{"id": rng.randint(1, 9)}] if rng.random() < 0.6 else []},
    }
    for key in rng.sample(list(payload), rng.randint(0, 2)):  # some events leave fields out
        del payload[key]
    if rng.random() < 0.3:
        payload["region"] = rng.choice(REGIONS)
    if rng.random() < 0.2:
        payload["retries"] = rng.randint(0, 5)
    if rng.random() < 0.05:
        payload["ticket"] = "".join(rng.choices(string.ascii_uppercase, k=6))
    return payload


def build_events(rng: random.Random, count: int) -> list[Event]:
    events = []
    for _ in range(count):
        name = f"{rng.choice(PREFIXES)}.{rng.choice(SUFFIXES)}"
        severity = Severity(rng.choice([0, 0, 1, 1, 2, 3]))
        target = {"event": name, "severity": severity.label, "payload": _payload(rng)}
        events.append((name, severity, target))
    return events


def time_routing(routes: Sequence[Route], events: Sequence[Event], repeat: int) -> tuple[float, int]:
    """Best of `repeat` runs (least disturbed by the rest of the machine), in µs per event."""
    best = float("inf")
    matched = 0
    for _ in range(repeat):
        matched = 0
        start = time.perf_counter()
        for name, severity, target in events:
            matched += len(match_routes(routes, name, severity, target))
        best = min(best, time.perf_counter() - start)
    return best / len(events) * 1e6, matched


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 events instead of 10,000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    routes = build_routes(rng)
    bare = tuple(dataclasses.replace(r, conditions=None) for r in routes)
    events = build_events(rng, 1_000 if args.quick else 10_000)
    candidates = sum(1 for name, severity, _ in events for r in routes
                     if severity >= r.min_severity and pattern_matches(r.match, name))

    time_routing(routes[:10], events[:200], 1)  # warm caches before timing anything
    us, matched = time_routing(routes, events, args.repeat)
    base_us, base_matched = time_routing(bare, events, args.repeat)

    n = len(events)
    conditions = sum(len(r.conditions.when) for r in routes if r.conditions)
    print(f"routes={len(routes)} events={n} conditions={conditions}")
    print(f"routes whose name/severity match, so conditions run: {candidates / n:.1f} per event")
    print(f"routes matched: with conditions {matched / n:.1f}, without {base_matched / n:.1f} per event")
    print(f"with conditions:    {us:8.2f} µs/event")
    print(f"without (baseline): {base_us:8.2f} µs/event   ratio {us / base_us:.2f}x")
    print(json.dumps({"bench": "routing", "us_per_event": round(us, 2),
                      "baseline_us_per_event": round(base_us, 2), "target_us": TARGET_US,
                      "ok": us < TARGET_US}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
