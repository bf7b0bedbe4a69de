"""API keys: only their SHA-256 is held; a presented key is hashed and looked up."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from alertd.routing import any_pattern_matches

KEY_PREFIX = "alertd_"
MAX_PRESENTED_KEY = 512

Role = Literal["producer", "admin"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    role: Role
    events: tuple[str, ...]
    sha256: str
    rate: str | None = None  # "100/s": requests this key may make; None = no limit

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_emit(self, event_name: str) -> bool:
        return self.is_admin or "*" in self.events or any_pattern_matches(self.events, event_name)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """`alertd_` + 32 random bytes, url-safe: the prefix lets secret scanners find a leaked key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_hash = {k.sha256.lower(): k for k in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, presented: str) -> ApiKey | None:
        if not presented or len(presented) > MAX_PRESENTED_KEY:
            return None
        digest = hash_key(presented)
        found = self._by_hash.get(digest)
        # The dict lookup is on a one-way hash, so its timing says nothing useful about the key;
        # the final comparison is constant-time all the same.
        if found is not None and hmac.compare_digest(found.sha256.lower(), digest):
            return found
        return None


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key from either header; None if absent or not text (aiohttp hands non-UTF-8 header bytes
    through as surrogates, which no key contains)."""
    key = None
    if x_api_key:
        key = x_api_key.strip()
    elif authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            key = token.strip()
    if key is None or not key.isprintable() or not key.isascii():
        return None
    return key
