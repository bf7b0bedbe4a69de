"""Domain types. No I/O here: everything else builds on these."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from functools import lru_cache
from typing import Any


class Severity(IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, value: str) -> Severity:
        """Accepts the four names (any case) and `urgent` as `critical`; raises ValueError otherwise."""
        exact = _SEVERITY_SPELLINGS.get(value)  # the lowercase names producers send: one dict lookup
        if exact is not None:
            return exact
        name = value.strip().lower()
        if name == "urgent":
            return cls.CRITICAL
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {value[:40]!r}: use info, warning, error or critical") from None

    @property
    def label(self) -> str:
        return self.name.lower()


_SEVERITY_SPELLINGS = {s.name.lower(): s for s in Severity} | {"urgent": Severity.CRITICAL}


class DeliveryState(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DEAD = "dead"
    SKIPPED = "skipped"

    @property
    def is_open(self) -> bool:
        return self in (DeliveryState.PENDING, DeliveryState.RETRYING)


class Origin(StrEnum):
    ROUTE = "route"
    REPLAY = "replay"
    FALLBACK = "fallback"
    ESCALATION = "escalation"


@dataclass(frozen=True, slots=True)
class Envelope:
    """A producer's validated (and redacted) request, before it has an id."""

    event: str
    payload: dict[str, Any]
    severity: Severity
    idempotency_key: str | None = None
    actions: tuple[tuple[str, str], ...] = ()  # (name, label): approvals this event asks for

    def as_match_target(self) -> dict[str, Any]:
        """What route conditions look into: the envelope as the producer sent it."""
        return {"event": self.event, "severity": self.severity.label, "payload": self.payload}


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    name: str
    severity: Severity
    payload: dict[str, Any]
    created_at: float
    source: str = ""
    idempotency_key: str | None = None


@dataclass(slots=True)
class Delivery:
    """One (event x channel) obligation. Mutable: the dispatcher advances its state."""

    id: int
    event_id: str
    channel: str
    severity: Severity
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_attempt_at: float = 0.0
    created_at: float = field(default_factory=time.time)
    origin: Origin = Origin.ROUTE
    replay_of: int | None = None
    last_error: str | None = None
    reason: str | None = None
    updated_at: float = 0.0
    budget_from: int = 0  # attempts made before a dead-letter retry; the attempt budget counts from here
    reason_ref: int | None = None  # for a skipped delivery: the silence, or the delivery that went out instead


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: int
    number: int
    started_at: float
    duration_ms: float
    outcome: str  # "delivered" | "failed"
    http_status: int | None
    error: str | None


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class _RandomBits:
    """80-bit random values from a buffer refilled 4 KiB at a time. os.urandom per event was the top
    ingest cost: the syscall releases the GIL, and under load the event loop then waits for the writer
    thread to hand it back (bench/README.md). Same randomness, one syscall per ~400 ids."""

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0

    def take(self) -> bytes:
        if self._offset + 10 > len(self._buffer):
            self._buffer, self._offset = os.urandom(4000), 0
        start = self._offset
        self._offset = start + 10
        return self._buffer[start:start + 10]


_RANDOM = _RandomBits()
# every 10-bit value as its two Crockford digits: the 80 random bits are 8 lookups
_DIGIT_PAIRS = tuple(_CROCKFORD[i >> 5] + _CROCKFORD[i & 31] for i in range(1024))


@lru_cache(maxsize=1)
def _time_prefix(ms: int) -> str:
    """`evt_` and the 10 time digits of a ULID, encoded once per millisecond: events arrive many per
    millisecond under load, and the encoding was most of an id's cost."""
    return _ulid(ms << 80)[:14]


def new_event_id(now: float | None = None) -> str:
    """`evt_` + a ULID: 48 bits of milliseconds then 80 random bits, so ids sort by creation time
    (cursors and SQLite's primary-key index both like that)."""
    ms = int((time.time() if now is None else now) * 1000)
    r, p = int.from_bytes(_RANDOM.take(), "big"), _DIGIT_PAIRS
    return "".join([_time_prefix(ms), p[r >> 70], p[(r >> 60) & 1023], p[(r >> 50) & 1023], p[(r >> 40) & 1023],
                    p[(r >> 30) & 1023], p[(r >> 20) & 1023], p[(r >> 10) & 1023], p[r & 1023]])


def event_id_bound(ts: float) -> str:
    """The smallest event id created at or after `ts`: time filters become primary-key ranges."""
    return _ulid(max(0, int(ts * 1000)) << 80)


def _ulid(value: int) -> str:
    return "evt_" + "".join([_CROCKFORD[(value >> shift) & 31] for shift in _SHIFTS])


_SHIFTS = tuple(range(125, -1, -5))  # 26 Crockford digits of a 128-bit value, most significant first


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel sends: the event, rendered. `delivery_id` stays the same on every retry."""

    event: Event
    delivery_id: int
    attempt: int
    title: str
    summary: str
    fields: tuple[tuple[str, str], ...] = ()
    link: str | None = None
    actions: tuple[tuple[str, str], ...] = ()  # (label, url): acknowledge or approve links
