"""Checks, pure: what a ping or a passing deadline does to a check, and which events it emits.
The scheduler applies these and persists each transition with its events in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from alertd.durations import iso, parse_bounded_duration
from alertd.model import Severity
from alertd.routing import valid_pattern

State = Literal["new", "up", "down", "running", "paused"]
PingKind = Literal["success", "start", "fail"]


class CheckDecl(BaseModel):
    """A check as declared in `[[checks]]` or sent to the admin API."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    period: float | None = None
    cron: str | None = Field(default=None, max_length=200)
    tz: str = "UTC"
    grace: float = 60.0
    max_runtime: float | None = None
    failure_threshold: int = Field(default=3, ge=1, le=1000)
    severity: str = "error"
    description: str = Field(default="", max_length=2000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if "*" in value or not valid_pattern(value):
            raise ValueError("a check name is an event-style name: lowercase dotted words")
        return value

    @field_validator("period", "grace", "max_runtime", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        return parse_bounded_duration(value, 1, 366 * 86400, info.field_name or "a duration")

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        return Severity.parse(value).label

    @model_validator(mode="after")
    def _schedule(self) -> CheckDecl:
        if (self.period is None) == (self.cron is None):
            raise ValueError("give exactly one of period (a heartbeat) or cron (with tz)")
        if self.cron is not None:
            zone = _zone(self.tz)
            try:
                next(CronSim(self.cron, datetime.now(zone)))
            except (CronSimError, StopIteration) as exc:
                raise ValueError(f"cron {self.cron[:60]!r}: {exc or 'never fires'}") from None
        return self


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"tz {name[:60]!r} is not a known time zone (e.g. UTC, Europe/Berlin)") from None


@dataclass(frozen=True, slots=True)
class CheckState:
    state: State = "new"
    last_ping_at: float | None = None
    last_start_at: float | None = None
    deadline_at: float | None = None
    runtime_deadline_at: float | None = None
    fail_streak: int = 0


@dataclass(frozen=True, slots=True)
class Emit:
    name: str
    severity: Severity
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Transition:
    state: CheckState
    emits: tuple[Emit, ...] = ()


def next_expected(spec: CheckDecl, after: float) -> float:
    """When the next ping is due (before grace)."""
    if spec.period is not None:
        return after + spec.period
    assert spec.cron is not None
    zone = _zone(spec.tz)
    return next(CronSim(spec.cron, datetime.fromtimestamp(after, UTC).astimezone(zone))).timestamp()


def deadline_after(spec: CheckDecl, after: float) -> float:
    return next_expected(spec, after) + spec.grace


def _payload(spec: CheckDecl, st: CheckState, summary: str, **extra: Any) -> dict[str, Any]:
    schedule = {"period_s": spec.period} if spec.period is not None else {"cron": spec.cron, "tz": spec.tz}
    return {"summary": summary, "check": spec.name, "state": st.state, "last_ping_at": iso(st.last_ping_at),
            "fail_streak": st.fail_streak, **schedule, "grace_s": spec.grace, **extra}


def on_ping(spec: CheckDecl, st: CheckState, kind: PingKind, now: float) -> Transition:
    if st.state == "paused":
        return Transition(st)  # recorded, but a paused check neither recovers nor alerts
    if kind == "start":
        runtime = now + spec.max_runtime if spec.max_runtime is not None else None
        state: State = "running" if st.state != "down" else "down"
        return Transition(replace(st, state=state, last_start_at=now, runtime_deadline_at=runtime))
    deadline = deadline_after(spec, now)
    if kind == "success":
        new = replace(st, state="up", last_ping_at=now, deadline_at=deadline, runtime_deadline_at=None,
                      fail_streak=0)
        if st.state == "down":
            return Transition(new, (Emit("alertd.check.up", Severity.INFO,
                                         _payload(spec, new, f"check {spec.name} is up again")),))
        return Transition(new)
    streak = st.fail_streak + 1
    # a failing run still reported: the deadline re-arms; a missing check stays down until a success
    new = replace(st, state="down" if st.state == "down" else "up", last_ping_at=now, deadline_at=deadline,
                  runtime_deadline_at=None, fail_streak=streak)
    if streak == spec.failure_threshold:
        return Transition(new, (Emit("alertd.check.failing", Severity.parse(spec.severity),
                                     _payload(spec, new, f"check {spec.name} failed {streak} times in a row",
                                              threshold=spec.failure_threshold)),))
    return Transition(new)


def on_deadline(spec: CheckDecl, st: CheckState, now: float) -> Transition:
    """The ping deadline passed: down, once. The next ping re-arms it."""
    if st.state not in ("up", "running") or st.deadline_at is None or st.deadline_at > now:
        return Transition(st)
    new = replace(st, state="down", deadline_at=None)
    missed = iso(st.deadline_at)
    return Transition(new, (Emit("alertd.check.down", Severity.parse(spec.severity),
                                 _payload(spec, new, f"check {spec.name} is down: no ping by {missed}",
                                          deadline_at=missed)),))


def on_runtime_deadline(spec: CheckDecl, st: CheckState, now: float) -> Transition:
    if st.runtime_deadline_at is None or st.runtime_deadline_at > now:
        return Transition(st)
    new = replace(st, runtime_deadline_at=None)
    return Transition(new, (Emit("alertd.check.runtime_exceeded", Severity.parse(spec.severity),
                                 _payload(spec, new, f"check {spec.name} has run longer than "
                                                     f"{spec.max_runtime:g}s", started_at=iso(st.last_start_at),
                                          max_runtime_s=spec.max_runtime)),))


def pause(st: CheckState) -> CheckState:
    return replace(st, state="paused", deadline_at=None, runtime_deadline_at=None)


def resume(st: CheckState) -> CheckState:
    """Back to new: like a fresh check, it waits for its first ping before it can go down."""
    return replace(st, state="new", deadline_at=None, runtime_deadline_at=None, fail_streak=0)
