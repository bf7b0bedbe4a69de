"""Pure: silences (Alertmanager's idea). A silence mutes every delivery of the events it matches —
an event pattern plus optional conditions on the envelope — between starts_at and ends_at, unless it
was expired early. Silenced deliveries are still recorded, as `skipped` with reason "silenced"."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from alertd.conditions import ConditionError, ConditionSet, parse_conditions
from alertd.durations import check_range, parse_duration
from alertd.routing import pattern_error, pattern_matches, valid_pattern

MAX_SILENCE_S: Final = 90 * 86400.0
SilenceState = Literal["active", "pending", "expired"]
Managed = Literal["config", "api"]


class SilenceError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SilenceMatchers:
    event: str = "*"
    conditions: ConditionSet | None = None

    def matches(self, name: str, target: Mapping[str, Any]) -> bool:
        if not pattern_matches(self.event, name):
            return False
        return self.conditions is None or self.conditions.matches(target)

    def to_config(self) -> dict[str, Any]:
        return {"event": self.event, **(self.conditions.to_config() if self.conditions else {})}

    def to_json(self) -> str:
        """Canonical (sorted keys): equal matchers give equal text, so config silences can be found again."""
        return orjson.dumps(self.to_config(), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> SilenceMatchers:
        event = raw.get("event", "*")
        if not isinstance(event, str) or not valid_pattern(event):
            raise SilenceError("event: " + pattern_error(str(event)))
        try:
            conditions = parse_conditions(raw.get("when"), raw.get("any"))
        except ConditionError as exc:
            raise SilenceError(str(exc)) from None
        return cls(event, conditions)


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: SilenceMatchers
    starts_at: float
    ends_at: float
    creator: str
    comment: str
    managed: Managed = "api"
    created_at: float = 0.0
    expired_at: float | None = None

    def active(self, now: float) -> bool:
        return self.expired_at is None and self.starts_at <= now < self.ends_at

    def state(self, now: float) -> SilenceState:
        if (self.expired_at is not None and self.expired_at <= now) or now >= self.ends_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"

    def matches(self, name: str, target: Mapping[str, Any]) -> bool:
        """`target` is the envelope as routes see it ({event, severity, payload}): a silence on
        severity is a condition like {field = "severity", op = "ge", value = "error"}."""
        return self.matchers.matches(name, target)


class SilenceSet:
    """The silences in force (active or pending), first created first. Whether one is active is asked
    per event, so a silence starts and ends on time without a timer."""

    __slots__ = ("silences",)

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self.silences = tuple(sorted((s for s in silences if s.expired_at is None), key=lambda s: s.id))

    def __len__(self) -> int:
        return len(self.silences)

    def first_match(self, name: str, target: Mapping[str, Any], now: float) -> Silence | None:
        for silence in self.silences:
            if silence.active(now) and silence.matchers.matches(name, target):
                return silence
        return None


NO_SILENCES: Final = SilenceSet()


class SilenceBook:
    """Holds the SilenceSet in force; a change builds a new set and swaps it in one assignment, so an
    event sees the old silences or the new, never half. Filled from the store (store.silence_ops)."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._set = SilenceSet(silences)
        self.lock = asyncio.Lock()  # held by whoever reloads the book (store.silence_ops.refresh)

    def current(self) -> SilenceSet:
        return self._set

    def swap(self, silences: Iterable[Silence]) -> None:
        self._set = SilenceSet(silences)


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a TOML local date-time, or ISO-8601 without an offset: UTC
    return check_range(value, name)


class SilenceDecl(BaseModel):
    """A silence as declared: `[[silences]]` in the TOML, or the body of POST /v1/admin/silences."""

    model_config = ConfigDict(extra="forbid")
    event: str = "*"
    when: list[Any] | None = None
    any: list[Any] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    duration: float | None = Field(default=None, validate_default=True)
    creator: str = Field(default="config", min_length=1, max_length=100)
    comment: str = Field(min_length=1, max_length=1000)

    @field_validator("event")
    @classmethod
    def _event(cls, value: str) -> str:
        if not valid_pattern(value):
            raise ValueError(pattern_error(value))
        return value

    @field_validator("when")
    @classmethod
    def _when(cls, value: list[Any] | None) -> list[Any] | None:
        return _conditions_ok(value, None)

    @field_validator("any")
    @classmethod
    def _any(cls, value: list[Any] | None) -> list[Any] | None:
        return _conditions_ok(None, value)

    @field_validator("starts_at")
    @classmethod
    def _starts(cls, value: datetime | None) -> datetime | None:
        return _aware(value, "starts_at")

    @field_validator("ends_at")
    @classmethod
    def _ends(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        value = _aware(value, "ends_at")
        if value is None:
            return None
        starts = info.data.get("starts_at")
        start = starts.timestamp() if starts is not None else datetime.now(UTC).timestamp()
        if starts is not None and value <= starts:
            raise ValueError("ends_at must be after starts_at")
        if value.timestamp() - start > MAX_SILENCE_S:
            raise ValueError("a silence lasts at most 90 days")
        return value

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: ValidationInfo) -> float | None:
        has_end = info.data.get("ends_at") is not None
        if value is None:
            if not has_end and "ends_at" in info.data:  # a bad ends_at is reported on its own
                raise ValueError("give ends_at or duration (e.g. '2h')")
            return None
        if has_end:
            raise ValueError("give ends_at or duration, not both")
        seconds = parse_duration(value)
        if not 0 < seconds <= MAX_SILENCE_S:
            raise ValueError("duration must be more than 0 and at most 90 days")
        return seconds

    @field_validator("comment")
    @classmethod
    def _comment(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("comment must say why (it cannot be blank)")
        return value

    def matchers(self) -> SilenceMatchers:
        return SilenceMatchers(self.event, parse_conditions(self.when, self.any))

    def window(self, now: float) -> tuple[float, float]:
        """(starts_at, ends_at) in epoch seconds: starts_at defaults to `now`. An ends_at already past
        with no starts_at gives an empty window at ends_at (the silence is over before it starts)."""
        end = self.ends_at.timestamp() if self.ends_at is not None else None
        start = self.starts_at.timestamp() if self.starts_at is not None else min(now, end if end is not None else now)
        if end is None:
            end = start + (self.duration or 0.0)
        return start, end

    def describes(self, starts_at: float, ends_at: float) -> bool:
        """Whether a stored silence's window is the one this declaration gives (the times it states)."""
        if self.starts_at is not None and abs(self.starts_at.timestamp() - starts_at) > 1e-3:
            return False
        if self.ends_at is not None:
            return abs(self.ends_at.timestamp() - ends_at) <= 1e-3
        return abs((ends_at - starts_at) - (self.duration or 0.0)) <= 1e-3


def _conditions_ok(when: Any, any_: Any) -> Any:
    try:
        parse_conditions(when, any_)
    except ConditionError as exc:
        raise ValueError(str(exc)) from None
    return when if when is not None else any_
