"""Retry arithmetic: pure, so the dispatcher's decisions are testable without a clock or a network."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 600.0

    def should_retry(self, attempts_made: int) -> bool:
        return attempts_made < self.max_attempts

    def delay(self, attempts_made: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Exponential backoff with full jitter (uniform in [0, min(cap, base·2^(n-1))]); a receiver's
        Retry-After is the earliest next attempt, even past the cap."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(0, attempts_made - 1)))
        jittered = (rng or random).uniform(0, ceiling)
        if retry_after is not None:
            return max(jittered, min(retry_after, MAX_RETRY_AFTER_S))
        return jittered


def parse_retry_after(value: str | None, now: float) -> float | None:
    """HTTP Retry-After: delay-seconds or an HTTP-date. Unparseable or negative → None."""
    if not value or len(value) > 64:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to str.isdigit, not to float()
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        seconds = parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
