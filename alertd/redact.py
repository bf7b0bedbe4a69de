"""Redaction of sensitive payload keys before an event is stored.

Matching rule: a key is normalised to a tuple of words — camelCase and letter→digit boundaries split
("accessToken" → access token, "APIKey" → api key, "password2" → password 2), lowercased, and `-`, `.`,
` ` treated as `_` separators. A configured key, normalised the same way, matches when its words appear
as a contiguous run of the key's words. So `db_password`, `X-Api-Key`, `accessToken`, `user.session_id`
and `refresh_token` are sensitive, while `tokenizer`, `passwordless_enabled` and `sessions` are not:
matching is by whole word, never by substring, because substring matching redacts too much
(`author`, `tokenizer`) and whole words still catch every compound spelling of a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

DEFAULT_SENSITIVE_KEYS: tuple[str, ...] = (
    "password", "passwd", "token", "secret", "api_key", "apikey", "authorization", "cookie", "session",
    "csrf", "private_key", "client_secret", "access_key",
)
REDACTED = "[redacted]"

_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z])")  # "APIKey" → "API_Key"
_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")  # "accessToken" → "access_Token"
_DIGIT_BOUNDARY = re.compile(r"([A-Za-z])([0-9])")  # "password2" → "password_2"
_SEPARATORS = re.compile(r"[-_. ]+")
_CONTAINERS = (dict, list)
HARMLESS_CACHE_LIMIT = 4096
HARMLESS_KEY_MAX = 64


@lru_cache(maxsize=4096)
def normalise_key(key: str) -> tuple[str, ...]:
    key = _ACRONYM_BOUNDARY.sub(r"\1_\2", key)
    key = _CAMEL_BOUNDARY.sub(r"\1_\2", key)
    key = _DIGIT_BOUNDARY.sub(r"\1_\2", key)
    return tuple(word for word in _SEPARATORS.split(key.lower()) if word)


@dataclass(frozen=True, slots=True)
class SensitiveKeys:
    # Most configured keys are one word, and those need only a set lookup; the few multi-word keys
    # (api_key, client_secret, …) are scanned as runs, and only when the key holds a run's first word.
    words: frozenset[str]
    runs: tuple[tuple[str, ...], ...]
    run_starts: frozenset[str]
    # Keys already judged harmless. Payloads repeat their keys, so on the ingest path one C-level subset
    # test usually clears a whole object. Bounded, so random keys from a hostile producer cannot grow it.
    harmless: set[str] = field(default_factory=set, compare=False, hash=False, repr=False)

    def __call__(self, key: str) -> bool:
        return is_sensitive(key, self)


def compile_sensitive(keys: Iterable[str]) -> SensitiveKeys:
    """ValueError on a key with no words in it (e.g. "" or "--"): as a run it would match every key."""
    words: set[str] = set()
    runs: set[tuple[str, ...]] = set()
    for key in keys:
        normalised = normalise_key(key)
        if not normalised:
            raise ValueError(f"sensitive key {key[:40]!r} has no letters or digits")
        if len(normalised) == 1:
            words.add(normalised[0])
        else:
            runs.add(normalised)
    return SensitiveKeys(frozenset(words), tuple(sorted(runs)), frozenset(run[0] for run in runs))


def _contains_run(words: tuple[str, ...], run: tuple[str, ...]) -> bool:
    size = len(run)
    return any(words[start:start + size] == run for start in range(len(words) - size + 1))


def is_sensitive(key: str, sensitive: SensitiveKeys) -> bool:
    words = normalise_key(key)
    if not sensitive.words.isdisjoint(words):
        return True
    if sensitive.run_starts.isdisjoint(words):
        return False
    return any(_contains_run(words, run) for run in sensitive.runs)


def _is_sensitive_key(key: object, sensitive: SensitiveKeys) -> bool:
    # JSON keys are always strings; anything else (an int key from Python code) has no name to judge.
    return isinstance(key, str) and is_sensitive(key, sensitive)


def redact(value: Any, sensitive: SensitiveKeys) -> Any:
    """A redacted copy of `value`: dicts and lists are copied, everything else is shared (immutable).
    When nothing in it is sensitive — most payloads — `value` itself comes back: no copy is made."""
    if not isinstance(value, _CONTAINERS) or not _has_sensitive(value, sensitive):
        return value
    # An explicit stack rather than recursion, so nesting depth can never hit the recursion limit; the
    # memo maps each source container to its copy, which keeps shared references shared and makes a
    # cyclic structure terminate instead of looping forever.
    root: dict[Any, Any] | list[Any] = {} if isinstance(value, dict) else []
    memo: dict[int, dict[Any, Any] | list[Any]] = {id(value): root}
    stack: list[tuple[Any, dict[Any, Any] | list[Any]]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        if isinstance(target, dict):
            for key, item in source.items():
                target[key] = REDACTED if _is_sensitive_key(key, sensitive) else _copy(item, memo, stack)
        else:
            target.extend([_copy(item, memo, stack) for item in source])
    return root


def _has_sensitive(value: Any, sensitive: SensitiveKeys) -> bool:
    harmless = sensitive.harmless
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            keys = item.keys()
            if not keys <= harmless:
                for key in keys - harmless:
                    if _is_sensitive_key(key, sensitive):
                        return True
                    if len(harmless) < HARMLESS_CACHE_LIMIT and isinstance(key, str) and len(key) <= HARMLESS_KEY_MAX:
                        harmless.add(key)
            stack.extend([child for child in item.values() if isinstance(child, _CONTAINERS)])
        else:
            stack.extend([child for child in item if isinstance(child, _CONTAINERS)])
    return False


def _copy(item: Any, memo: dict[int, dict[Any, Any] | list[Any]],
          stack: list[tuple[Any, dict[Any, Any] | list[Any]]]) -> Any:
    """A scalar as is, or a container's (possibly still empty) copy, queued to be filled."""
    if not isinstance(item, _CONTAINERS):
        return item
    copy = memo.get(id(item))
    if copy is None:
        copy = {} if isinstance(item, dict) else []
        memo[id(item)] = copy
        stack.append((item, copy))
    return copy
