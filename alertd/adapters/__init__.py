"""Ingest adapters: other producers' payloads (Alertmanager, declared [[hooks]]) → alertd envelopes.

Pure: a payload in, envelopes or an IngestError out. The HTTP edge lives in alertd/api/hooks.py.
"""

from __future__ import annotations

import re

from alertd.routing import MAX_EVENT_NAME

MAX_SEGMENT = 180
UNNAMED = "unnamed"

_OUTSIDE_SEGMENT = re.compile(r"[^a-z0-9_-]")


def name_segment(raw: str, limit: int = MAX_SEGMENT) -> str:
    """One event-name segment from free text: lowercase, anything outside [a-z0-9_-] becomes `_`
    (dots too), leading `_`/`-` stripped, at most `limit` characters. "" when nothing is left."""
    return _OUTSIDE_SEGMENT.sub("_", raw.lower()).lstrip("_-")[:limit]


def dotted_name(raw: str, limit: int = MAX_SEGMENT) -> str:
    """Free text that may hold dotted words (`Disk.Full` → `disk.full`): each segment normalised,
    empty segments dropped, at most `limit` characters. "" when nothing is left."""
    segments = (name_segment(part, limit) for part in raw.split("."))
    return ".".join(s for s in segments if s)[:limit].rstrip(".")


def bounded_limit(prefix: str) -> int:
    """How long a normalised name may be after `prefix` and still fit alertd's name limit."""
    return max(1, min(MAX_SEGMENT, MAX_EVENT_NAME - len(prefix)))
