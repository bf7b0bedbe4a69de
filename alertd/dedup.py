"""Pure: dedup keys for route windows (`suppress_for`). A template such as "{event}:{payload.cue_id}" is
checked and compiled once, when the route loads; rendering is then a few lookups per event."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from alertd.model import Severity

MAX_TEMPLATE: Final = 500
MAX_KEY: Final = 500  # a longer rendered key is stored as "sha256:<hex>" of itself
MAX_PATH_SEGMENTS: Final = 32
DEFAULT_TEMPLATE: Final = "{event}"

DedupKey = Callable[[str, Severity, Mapping[str, Any]], str]
_Part = Callable[[str, Severity, Mapping[str, Any]], str]

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+\Z")


class DedupKeyError(ValueError):
    pass


def compile_dedup_key(template: str) -> DedupKey:
    """`{event}`, `{severity}` and `{payload.a.b}` (a dotted path; a number indexes a list; a missing
    path renders as ""); `{{` and `}}` are literal braces. Anything else in braces raises DedupKeyError."""
    if not isinstance(template, str) or not template:
        raise DedupKeyError("must be a non-empty string")
    if len(template) > MAX_TEMPLATE:
        raise DedupKeyError(f"is longer than {MAX_TEMPLATE} characters")
    parts: list[str | _Part] = []
    position = 0
    for token in _TOKEN.finditer(template):
        if token.start() > position:
            parts.append(template[position:token.start()])
        position = token.end()
        text = token.group(0)
        if text in ("{{", "}}"):
            parts.append(text[0])
        elif token.group(1) is None:
            raise DedupKeyError(f"unbalanced {text!r} at {token.start()} (write {text * 2} for a brace)")
        else:
            parts.append(_placeholder(token.group(1)))
    if position < len(template):
        parts.append(template[position:])
    return _renderer(tuple(parts))


def _placeholder(name: str) -> _Part:
    if name == "event":
        return lambda event, severity, payload: event
    if name == "severity":
        return lambda event, severity, payload: severity.label
    root, _, rest = name.partition(".")
    if root != "payload" or not rest:
        raise DedupKeyError(f"unknown placeholder {{{name[:60]}}}; use {{event}}, {{severity}} "
                            "or {payload.a.b}")
    segments = rest.split(".")
    if len(segments) > MAX_PATH_SEGMENTS or not all(segments):
        raise DedupKeyError(f"{{{name[:60]}}}: a path is 1 to {MAX_PATH_SEGMENTS} non-empty segments")
    steps = tuple((s, int(s) if s.isascii() and s.isdigit() else None) for s in segments)
    return lambda event, severity, payload: _text(_resolve(steps, payload))


def _renderer(parts: tuple[str | _Part, ...]) -> DedupKey:
    def render(event: str, severity: Severity, payload: Mapping[str, Any]) -> str:
        key = "".join(p if isinstance(p, str) else p(event, severity, payload) for p in parts)
        if len(key) <= MAX_KEY:
            return key
        return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    return render


_MISSING: Final = object()


def _resolve(steps: tuple[tuple[str, int | None], ...], node: Any) -> Any:
    for key, index in steps:
        if isinstance(node, Mapping):
            node = node.get(key, _MISSING)
        elif isinstance(node, list | tuple) and index is not None and index < len(node):
            node = node[index]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def _text(value: Any) -> str:
    """Strings as they are; JSON for the rest (so true, 1.5, null, {"a":1}); missing is empty."""
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return str(value)
