"""Time for the scheduler: the system clock, or a manual one tests advance by hand (no real sleeping)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def wait(self, wake: asyncio.Event, until: float | None) -> None:
        """Returns when `wake` is set or the clock reaches `until` (None: only `wake`)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def wait(self, wake: asyncio.Event, until: float | None) -> None:
        timeout = None if until is None else max(0.0, until - time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)


class ManualClock:
    def __init__(self, start: float | None = None) -> None:
        # starts at the real time: event ids and history carry real timestamps, and retention
        # compares the two
        self._now = time.time() if start is None else start
        self._waiters: list[asyncio.Event] = []

    def now(self) -> float:
        return self._now

    async def wait(self, wake: asyncio.Event, until: float | None) -> None:
        if until is not None and until <= self._now:
            return
        self._waiters.append(wake)
        try:
            await wake.wait()
        finally:
            self._waiters.remove(wake)

    def advance(self, seconds: float) -> None:
        self._now += seconds
        for wake in list(self._waiters):
            wake.set()
