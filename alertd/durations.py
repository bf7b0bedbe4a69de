"""Pure parsing of the durations and points in time that config, API and CLI accept."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*\Z")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}
MAX_DURATION_S = 10 * 365 * 86400.0


def parse_duration(value: str | int | float) -> float:
    """"250ms", "10s", "5m", "1h", "7d", or a bare number of seconds → seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '10s', '5m', '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif not isinstance(value, str):
        # a ValueError, not the TypeError len()/re would raise: pydantic turns only ValueErrors into a 400
        raise ValueError(f"a duration is a number of seconds or a string like '10s', got {type(value).__name__}")
    else:
        match = _DURATION_RE.match(value) if len(value) <= 40 else None
        if match is None:
            raise ValueError(f"invalid duration {value[:40]!r}: use e.g. '500ms', '10s', '5m', '1h', '7d'")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 0 <= seconds <= MAX_DURATION_S:
        raise ValueError(f"duration {value!r} is out of range (0 to 10 years)")
    return seconds


def parse_bounded_duration(value: str | int | float, low: float, high: float, what: str) -> float:
    """A duration that must lie in [low, high]; the error names the setting and its bounds."""
    seconds = parse_duration(value)
    if not low <= seconds <= high:
        raise ValueError(f"{what} must be between {human(low)} and {human(high)}")
    return seconds


def human(seconds: float) -> str:
    """60 → "1m", 0.1 → "100ms": durations as people write them in the config."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_instant(value: str, now: float) -> float:
    """A point in time: a duration ago ("1h" = one hour before now) or an ISO-8601 timestamp
    (naive means UTC). Returns epoch seconds."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        return parse_timestamp(value)
    except ValueError:
        raise ValueError(f"invalid time {value[:40]!r}: use a duration ago like '1h' or an ISO-8601 timestamp") \
            from None


# Times given to alertd lie between these. Far enough for any plan, and far enough from datetime's year 9999
# that a time plus any window alertd adds (90 days at most) can still be written back as ISO-8601.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_LATEST_ISO = "9999-12-31T23:59:59.999Z"


def check_range(value: datetime, name: str = "a time") -> datetime:
    """`value` (aware), or ValueError when it lies outside what alertd stores."""
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{name} must lie between 1970 and the year 9000")
    return value


def parse_timestamp(value: str) -> float:
    """An ISO-8601 timestamp (naive means UTC) → epoch seconds."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00")) if len(value) <= 64 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"invalid timestamp {value[:40]!r}: use ISO-8601, e.g. 2026-11-23T04:00:00Z")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return check_range(parsed, f"timestamp {value[:40]!r}").timestamp()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        # past year 9999: only a row stored before times were bounded; one odd field beats a listing that fails
        return _LATEST_ISO if ts > 0 else None
