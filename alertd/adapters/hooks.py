"""Declared inbound hooks: `[[hooks]]` in the TOML maps any producer's JSON body to alertd envelopes
with JSON pointers (RFC 6901), so a producer that cannot speak /v1/events needs no code.

    [[hooks]]
    name = "grafana"                # POST /v1/hooks/grafana
    event = "/ruleName"             # a pointer, or a literal with "=": "=grafana.alert"
    event_prefix = "grafana."       # prepended to a pointer-derived name (which is then normalised)
    severity = "/state"             # optional pointer or "=literal"; default info
    severity_map = { alerting = "critical", ok = "info" }
    payload = ""                    # pointer to an object ("" or "/" = all), or a table of name → pointer
    idempotency_key = "/id"         # optional pointer
    items = "/alerts"               # optional: one event per element; the other pointers are relative to it
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alertd.adapters import UNNAMED, bounded_limit, dotted_name
from alertd.ingest import MAX_IDEMPOTENCY_KEY, IngestError, invalid, parse_envelope
from alertd.model import Envelope, Severity
from alertd.routing import valid_event_name

HOOK_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
RESERVED_NAMES = frozenset({"alertmanager"})
MAX_POINTER = 512
MAX_PREFIX = 100
MAX_PAYLOAD_FIELDS = 100
DefaultSeverity = Callable[[str], Severity]
_PREFIX_RE = re.compile(r"^([a-z0-9][a-z0-9_-]*\.)+\Z")
_INDEX_RE = re.compile(r"^(0|[1-9][0-9]{0,17})\Z")


class _Missing:
    """What a pointer resolves to when nothing is there (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


# ------------------------------------------------------------------------------------------ JSON pointer


@dataclass(frozen=True, slots=True)
class Pointer:
    """RFC 6901, with one deliberate exception: "/" means the whole document (as "" does), because that
    is what people write; a top-level key named "" is not reachable."""

    text: str
    tokens: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Pointer:
        if len(text) > MAX_POINTER:
            raise ValueError(f"a JSON pointer is at most {MAX_POINTER} characters")
        if text in ("", "/"):
            return cls(text, ())
        if not text.startswith("/"):
            raise ValueError(f"{text[:60]!r} is neither a JSON pointer (starting with '/') nor a '=literal'")
        return cls(text, tuple(_unescape(token, text) for token in text[1:].split("/")))

    def resolve(self, document: Any) -> Any:
        """The value at this pointer, or MISSING (absent key, index out of range or '-', a pointer that
        goes through a string or number)."""
        node = document
        for token in self.tokens:
            if isinstance(node, dict):
                if token not in node:
                    return MISSING
                node = node[token]
            elif isinstance(node, list):
                if not _INDEX_RE.match(token) or int(token) >= len(node):
                    return MISSING
                node = node[int(token)]
            else:
                return MISSING
        return node


def _unescape(token: str, text: str) -> str:
    # `~` must be followed by 0 or 1; `~1` → `/` first, then `~0` → `~`, so `~01` stays the text `~1`.
    if re.search(r"~(?![01])", token):
        raise ValueError(f"{text[:60]!r}: '~' must be written '~0' ('~1' is '/')")
    return token.replace("~1", "/").replace("~0", "~")


@dataclass(frozen=True, slots=True)
class Constant:
    """A `=value` in a hook field: the same value for every event."""

    value: str

    @property
    def text(self) -> str:
        return "=" + self.value

    def resolve(self, document: Any) -> Any:
        return self.value


Source = Pointer | Constant


def parse_source(text: str) -> Source:
    """`=value` is a constant; anything else must be a JSON pointer."""
    if text.startswith("="):
        return Constant(text[1:])
    return Pointer.parse(text)


# ------------------------------------------------------------------------------------------ config


class HookDecl(BaseModel):
    """One `[[hooks]]` table, as written. `compile_hooks` checks the pointers and literals."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=HOOK_NAME_PATTERN)
    event: str
    event_prefix: str = ""
    severity: str | None = None
    severity_map: dict[str, str] = Field(default_factory=dict, max_length=200)
    payload: str | dict[str, str] = ""
    idempotency_key: str | None = None
    items: str | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved (POST /v1/hooks/{value} is built in)")
        return value


@dataclass(frozen=True, slots=True)
class CompiledHook:
    name: str
    event: Source
    event_prefix: str
    severity: Source | None
    severity_map: dict[str, Severity]
    payload: Pointer | tuple[tuple[str, Source], ...]
    idempotency_key: Pointer | None
    items: Pointer | None

    def to_envelopes(self, body: Any, max_batch: int, default_severity: DefaultSeverity | None = None,
                     ) -> list[Envelope]:
        """Raises IngestError: 400 naming the hook field that found nothing usable, 413 over `max_batch`.
        With no severity found, `default_severity(name)` (the event catalog's) applies, else info."""
        if self.items is None:
            return [self._one(body, "", default_severity)]
        elements = self.items.resolve(body)
        if not isinstance(elements, list):
            found = "nothing" if elements is MISSING else _json_type(elements)
            raise invalid(f"hook {self.name!r}: items {self.items.text!r} must point at an array, found {found}",
                          "items")
        if not elements:
            raise invalid(f"hook {self.name!r}: items {self.items.text!r} is an empty array: nothing to accept",
                          "items")
        if len(elements) > max_batch:
            raise IngestError(413, "too_large", f"hook {self.name!r}: at most {max_batch} items per request",
                              "items")
        return [self._one(element, f"items[{i}].", default_severity) for i, element in enumerate(elements)]

    def _one(self, document: Any, where: str, default_severity: DefaultSeverity | None) -> Envelope:
        raw: dict[str, Any] = {"event": self._event(document, where), "payload": self._payload(document, where)}
        severity = self._severity(document, where)
        if severity is not None:
            raw["severity"] = severity
        key = self._idempotency_key(document, where)
        if key is not None:
            raw["idempotency_key"] = key
        return parse_envelope(raw, where, default_severity)

    def _event(self, document: Any, where: str) -> str:
        if isinstance(self.event, Constant):
            return self.event.value
        value = self.event.resolve(document)
        if value is MISSING or value is None or value == "":
            raise invalid(f"hook {self.name!r}: event {self.event.text!r} found no event name in the body",
                          where + "event")
        if not isinstance(value, str):
            raise invalid(f"hook {self.name!r}: event {self.event.text!r} must point at a string, found "
                          f"{_json_type(value)}", where + "event")
        return self.event_prefix + (dotted_name(value, bounded_limit(self.event_prefix)) or UNNAMED)

    def _payload(self, document: Any, where: str) -> Any:
        if isinstance(self.payload, Pointer):
            value = self.payload.resolve(document)
            if not isinstance(value, dict):
                found = "nothing" if value is MISSING else _json_type(value)
                raise invalid(f"hook {self.name!r}: payload {self.payload.text!r} must point at an object, "
                              f"found {found}", where + "payload")
            return value
        payload = {}
        for key, source in self.payload:
            value = source.resolve(document)
            if value is not MISSING:
                payload[key] = value
        return payload

    def _severity(self, document: Any, where: str) -> str | None:
        if self.severity is None:
            return None
        value = self.severity.resolve(document)
        if value is MISSING or value is None:
            return None
        if isinstance(value, dict | list):
            raise invalid(f"hook {self.name!r}: severity {self.severity.text!r} must point at a string, found "
                          f"{_json_type(value)}", where + "severity")
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        mapped = self.severity_map.get(text.strip().lower())
        if mapped is not None:
            return mapped.label
        try:
            return Severity.parse(text).label
        except ValueError:
            raise invalid(f"hook {self.name!r}: severity value {text[:40]!r} is neither in severity_map nor one "
                          "of info, warning, error, critical", where + "severity") from None

    def _idempotency_key(self, document: Any, where: str) -> str | None:
        if self.idempotency_key is None:
            return None
        value = self.idempotency_key.resolve(document)
        if value is MISSING or value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise invalid(f"hook {self.name!r}: idempotency_key {self.idempotency_key.text!r} must point at a "
                          f"string or an integer, found {_json_type(value)}", where + "idempotency_key")
        return scoped_key(self.name, str(value))


def scoped_key(hook: str, value: str) -> str:
    """Idempotency keys are global: prefixing the hook keeps two producers' ids apart; a long id is hashed."""
    key = f"hook:{hook}:{value}"
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return f"hook:{hook}:sha256:{hashlib.sha256(value.encode()).hexdigest()[:40]}"


def _json_type(value: Any) -> str:
    """`a string`, `an object`: what a pointer found, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", dict: "an object", list: "an array", type(None): "null"}.get(type(value), "a value")


def compile_hooks(decls: Sequence[HookDecl]) -> dict[str, CompiledHook]:
    """Raises ValueError, one line: `hooks[i] (name).field: reason`."""
    hooks: dict[str, CompiledHook] = {}
    for index, decl in enumerate(decls):
        label = f"hooks[{index}] ({decl.name})"
        if decl.name in hooks:
            raise ValueError(f"{label}.name: duplicate hook name")
        hooks[decl.name] = compile_hook(decl, label)
    return hooks


def compile_hook(decl: HookDecl, label: str) -> CompiledHook:
    field = "name"
    try:
        if decl.name in RESERVED_NAMES:
            raise ValueError(f"{decl.name!r} is reserved (POST /v1/hooks/{decl.name} is built in)")
        field = "event"
        event = _event_source(decl.event, decl.event_prefix)
        field = "event_prefix"
        _check_prefix(decl.event_prefix, event)
        field = "severity_map"
        severity_map = _severity_map(decl.severity_map)
        field = "severity"
        severity = _severity_source(decl.severity, severity_map)
        field = "payload"
        payload = _payload_source(decl.payload)
        field = "idempotency_key"
        key = None if decl.idempotency_key is None else _pointer(decl.idempotency_key)
        field = "items"
        items = None if decl.items is None else _pointer(decl.items)
    except ValueError as exc:
        raise ValueError(f"{label}.{field}: {exc}") from None
    return CompiledHook(decl.name, event, decl.event_prefix, severity, severity_map, payload, key, items)


def _pointer(text: str) -> Pointer:
    if text.startswith("="):
        raise ValueError("must be a JSON pointer (starting with '/'), not a '=literal'")
    return Pointer.parse(text)


def _event_source(text: str, prefix: str) -> Source:
    source = parse_source(text)
    if isinstance(source, Constant) and not valid_event_name(source.value):
        raise ValueError(f"{source.value[:60]!r} is not an event name (lowercase dotted words: a-z, 0-9, _ and -)")
    return source


def _check_prefix(prefix: str, event: Source) -> None:
    if not prefix:
        return
    if isinstance(event, Constant):
        raise ValueError("applies only to a pointer event; put the whole name in the '=literal'")
    if len(prefix) > MAX_PREFIX or not _PREFIX_RE.match(prefix):
        raise ValueError(f"{prefix[:60]!r} must be dotted lowercase words ending in '.', e.g. 'grafana.' "
                         f"(at most {MAX_PREFIX} characters)")


def _severity_map(declared: dict[str, str]) -> dict[str, Severity]:
    mapped = {}
    for key, value in declared.items():
        try:
            mapped[key.strip().lower()] = Severity.parse(value)
        except ValueError as exc:
            raise ValueError(f"{key[:40]!r}: {exc}") from None
    return mapped


def _severity_source(text: str | None, severity_map: dict[str, Severity]) -> Source | None:
    if text is None:
        if severity_map:
            raise ValueError("severity_map is set but severity is not: say where the severity comes from")
        return None
    source = parse_source(text)
    if isinstance(source, Constant) and source.value.strip().lower() not in severity_map:
        Severity.parse(source.value)
    return source


def _payload_source(declared: str | dict[str, str]) -> Pointer | tuple[tuple[str, Source], ...]:
    if isinstance(declared, str):
        return _pointer(declared)
    if len(declared) > MAX_PAYLOAD_FIELDS:
        raise ValueError(f"a payload table holds at most {MAX_PAYLOAD_FIELDS} fields")
    fields = []
    for key, text in declared.items():
        if not key or len(key) > 100:
            raise ValueError("payload field names must be 1 to 100 characters")
        try:
            fields.append((key, parse_source(text)))
        except ValueError as exc:
            raise ValueError(f"{key[:40]!r}: {exc}") from None
    return tuple(fields)
