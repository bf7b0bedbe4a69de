"""Operator sessions for the web UI: server-side and in memory, so a restart signs everyone out (by
design: nothing to store, nothing to leak from disk). Each session ends after an idle spell or an
absolute lifetime, carries its own CSRF token, and remembers which admin key opened it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

IDLE_S = 8 * 3600.0
ABSOLUTE_S = 24 * 3600.0
MAX_SESSIONS = 1000
Clock = Callable[[], float]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def same_token(expected: str, presented: str | None) -> bool:
    """Constant-time comparison; None or a non-string never matches."""
    if not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))


@dataclass
class Session:
    key_name: str
    key_sha256: str  # to notice a key revoked or demoted while its session is open
    csrf: str
    created_at: float
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), shown on the next page

    def csrf_ok(self, presented: str | None) -> bool:
        return same_token(self.csrf, presented)

    def flash(self, kind: str, text: str) -> None:
        self.flashes = [*self.flashes[-4:], (kind, text)]

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class Sessions:
    """Session id → Session, keyed by the id's SHA-256 so the table never holds a usable cookie value."""

    def __init__(self, clock: Clock = time.time, *, idle_s: float = IDLE_S, absolute_s: float = ABSOLUTE_S,
                 limit: int = MAX_SESSIONS) -> None:
        self.clock = clock
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.limit = limit
        self._by_digest: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._by_digest)

    def create(self, key_name: str, key_sha256: str) -> tuple[str, Session]:
        """A fresh random id (32 bytes) for the cookie, and its session."""
        self.prune()
        while len(self._by_digest) >= self.limit:  # the oldest go first; dicts keep insertion order
            del self._by_digest[next(iter(self._by_digest))]
        now = self.clock()
        token = secrets.token_urlsafe(32)
        session = Session(key_name, key_sha256, secrets.token_urlsafe(32), now, now)
        self._by_digest[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie value (and marks it used), or None."""
        if not token or len(token) > 200:
            return None
        digest = _digest(token)
        session = self._by_digest.get(digest)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._by_digest[digest]
            return None
        session.last_seen = now
        return session

    def drop(self, token: str | None) -> None:
        if token:
            self._by_digest.pop(_digest(token), None)

    def prune(self) -> None:
        now = self.clock()
        for digest in [d for d, s in self._by_digest.items() if self._expired(s, now)]:
            del self._by_digest[digest]

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen >= self.idle_s or now - session.created_at >= self.absolute_s


class SignInThrottle:
    """At most `limit` failed sign-ins per remote address per `window_s`: slows guessing to a crawl
    (a key is 32 random bytes; this is for the weak keys someone typed into a config file)."""

    def __init__(self, clock: Clock = time.monotonic, *, limit: int = 5, window_s: float = 60.0,
                 max_addresses: int = 10_000) -> None:
        self.clock = clock
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float | None:
        """Seconds until this address may try again, or None if it may now."""
        failures = self._recent(address)
        if failures is None or len(failures) < self.limit:
            return None
        return max(0.0, failures[0] + self.window_s - self.clock())

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        if failures is None:
            if len(self._failures) >= self.max_addresses:
                self._forget_stale()
            failures = self._failures[address] = deque(maxlen=self.limit)
        failures.append(self.clock())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        cutoff = self.clock() - self.window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def _forget_stale(self) -> None:
        cutoff = self.clock() - self.window_s
        for address in [a for a, f in self._failures.items() if not f or f[-1] <= cutoff]:
            del self._failures[address]
        while len(self._failures) >= self.max_addresses:  # all recent: drop the oldest address
            del self._failures[next(iter(self._failures))]
