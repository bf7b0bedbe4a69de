"""Route conditions: declarative tests on an envelope's fields, validated and compiled once at load.

No eval and no user code: a condition is a dotted path, one of a fixed set of ops and a plain value.
Evaluation never raises, whatever the payload holds; a test that cannot be made simply fails.
"""

from __future__ import annotations

import operator
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, date, datetime, time
from typing import Any, Final

import re2

from alertd.model import Severity

OPS: Final = (
    "eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "contains", "exists", "not_exists", "matches",
)
ROOTS: Final = ("payload", "event", "severity")
MAX_PATH_SEGMENTS: Final = 32
MAX_FIELD_CHARS: Final = 256
MAX_VALUE_DEPTH: Final = 16
MAX_CONDITIONS: Final = 64
MAX_GROUPS: Final = 32
_MAX_SHOWN: Final = 60

Test = Callable[[Any], bool]
Why = Callable[[Any], str]
_Step = tuple[str, int | None]

_MISSING: Final = object()
_UNANCHORED: Final = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
_CMP: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}
_RANKS: Final = {s.label: int(s) for s in Severity} | {"urgent": int(Severity.CRITICAL)}
_SCALAR_TYPES: Final = (str, int, float, bool, datetime, date)
# Tuples, not `int | float`: isinstance() with a union built inline costs ~40 ns a call on 3.11.
_NUMBER: Final = (int, float)
_SEQ: Final = (list, tuple)
_HASHABLE: Final = (str, int, float)
_STR_OR_SEQ: Final = (str, list, tuple)

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 4


class ConditionError(ValueError):
    pass


def _short(value: Any) -> str:
    # Values can be megabytes, 10,000 levels deep or ints too long for str(): reprlib stops early,
    # and anything it still chokes on gets its type name instead.
    try:
        text = _REPR.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return "list" if isinstance(value, tuple) else type(value).__name__  # frozen config lists are tuples


def _as_number(value: Any) -> int | float | None:
    # bool is an int subclass; True > 0 must not pass as a numeric comparison.
    if isinstance(value, _NUMBER) and not isinstance(value, bool):
        return value
    return None


def _parse_timestamp(text: Any) -> datetime | None:
    # Only the extended YYYY-MM-DD form counts: fromisoformat also reads "20260101", and a digit
    # string should never quietly compare as a time. The length cap keeps hostile strings cheap.
    if not isinstance(text, str) or not 10 <= len(text) <= 64 or text[4] != "-" or text[7] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _severity_rank(value: Any) -> int | None:
    if not isinstance(value, str) or len(value) > 16:
        return None
    rank = _RANKS.get(value)
    return rank if rank is not None else _RANKS.get(value.strip().lower())


_COERCE: Final[dict[str, Callable[[Any], Any]]] = {
    "number": _as_number, "timestamp": _parse_timestamp, "severity": _severity_rank,
}


def _value_kind(path: str, value: Any) -> tuple[str, Any]:
    """How an ordering (or eq) op reads the condition's value: ("number" | "timestamp" | "severity"
    | "", its comparable key)."""
    if _as_number(value) is not None:
        return "number", value
    if isinstance(value, datetime):
        return "timestamp", value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):  # a TOML local date: midnight UTC
        return "timestamp", datetime.combine(value, time(), UTC)
    stamp = _parse_timestamp(value)
    if stamp is not None:
        return "timestamp", stamp
    rank = _severity_rank(value) if path == "severity" else None
    return ("severity", rank) if rank is not None else ("", None)


def _strict_eq(actual: Any, expected: Any) -> bool:
    # Plain == but bool and int differ, also inside lists and tables. Recursion follows `expected`,
    # which comes from config and is depth-capped at load, so a deep payload cannot blow the stack.
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(expected, tuple):
        return (isinstance(actual, _SEQ) and len(actual) == len(expected)
                and all(_strict_eq(a, e) for a, e in zip(actual, expected, strict=True)))
    if isinstance(expected, dict):
        return (isinstance(actual, Mapping) and len(actual) == len(expected)
                and all(k in actual and _strict_eq(actual[k], e) for k, e in expected.items()))
    return bool(actual == expected)


def _freeze(value: Any, depth: int = 0) -> Any:
    """Validates a condition value and copies it: lists become tuples so the frozen Condition cannot
    be changed behind its compiled state."""
    if value is None or isinstance(value, _SCALAR_TYPES):
        return value
    if depth >= MAX_VALUE_DEPTH:
        raise ConditionError(f"value nested deeper than {MAX_VALUE_DEPTH} levels")
    if isinstance(value, _SEQ):
        return tuple(_freeze(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ConditionError("value has a non-string key")
        return {k: _freeze(v, depth + 1) for k, v in value.items()}
    raise ConditionError(f"value of type {type(value).__name__} is not supported")


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def _compile_path(path: Any) -> tuple[_Step, ...]:
    if not isinstance(path, str) or not path:
        raise ConditionError(f"field must be a non-empty string, got {_type_name(path)}")
    if len(path) > MAX_FIELD_CHARS:
        raise ConditionError(f"field is longer than {MAX_FIELD_CHARS} characters")
    parts = path.split(".")
    if len(parts) > MAX_PATH_SEGMENTS:
        raise ConditionError(f"field {_short(path)} has more than {MAX_PATH_SEGMENTS} segments")
    if "" in parts:
        raise ConditionError(f"field {_short(path)} has an empty segment")
    if parts[0] not in ROOTS:
        raise ConditionError(f"field {_short(path)} must start with payload, event or severity")
    if parts[0] != "payload" and len(parts) > 1:
        raise ConditionError(f"field {_short(path)}: {parts[0]} is a string and has no sub-fields")
    return tuple((p, int(p) if p.isascii() and p.isdigit() else None) for p in parts)


def _resolve(steps: tuple[_Step, ...], target: Any) -> Any:
    node = target
    for key, index in steps:
        if isinstance(node, dict):
            node = node.get(key, _MISSING)
            if node is _MISSING:
                return _MISSING
        elif isinstance(node, _SEQ):
            # Only a plain non-negative integer segment indexes a list; "-1" or "x" is simply missing.
            if index is None or index >= len(node):
                return _MISSING
            node = node[index]
        elif isinstance(node, Mapping):
            node = node.get(key, _MISSING)
            if node is _MISSING:
                return _MISSING
        else:
            return _MISSING
    return node


# Builders turn (op, field, frozen value) into a fast test and a reason for when it fails; both are
# closures over the precomputed state, so evaluation does no parsing of the condition at all.

def _build_order(op: str, path: str, value: Any) -> tuple[Test, Why]:
    kind, key = _value_kind(path, value)
    if not kind:
        extra = ", timestamp or severity name" if path == "severity" else " or timestamp"
        got = f"{_type_name(value)} {_short(_thaw(value))}"
        raise ConditionError(f"op {op!r} needs a number{extra}, got {got}")
    cmp = _CMP[op]
    coerce = _COERCE[kind]

    if kind == "number":
        def test(actual: Any) -> bool:
            return isinstance(actual, _NUMBER) and not isinstance(actual, bool) and cmp(actual, key)
    else:
        def test(actual: Any) -> bool:
            got = coerce(actual)
            return got is not None and cmp(got, key)

    def why(actual: Any) -> str:
        if coerce(actual) is None:
            return f"type mismatch: {_type_name(actual)} vs {kind}"
        return f"value {_short(actual)} is not {op} {_short(value)}"

    return test, why


def _build_eq(op: str, path: str, value: Any) -> tuple[Test, Why]:
    kind, key = _value_kind(path, value)
    coerce = _COERCE.get(kind)

    def equals(actual: Any) -> bool:
        if coerce is not None:
            got = coerce(actual)
            if got is not None:
                return bool(got == key)
        return _strict_eq(actual, value)

    shown = _short(_thaw(value))
    if op == "eq":
        return equals, lambda actual: f"value {_short(actual)} is not eq {shown}"
    return (lambda actual: not equals(actual)), lambda actual: f"value {_short(actual)} is eq {shown}"


def _build_in(op: str, path: str, value: Any) -> tuple[Test, Why]:
    if not isinstance(value, tuple):
        raise ConditionError(f"op {op!r} needs a list value, got {_type_name(value)}")
    # Hash lookups for the common scalar case; bools kept apart since True == 1 hashes alike.
    bools = frozenset(v for v in value if isinstance(v, bool))
    hashable = [v for v in value if v is None or isinstance(v, _HASHABLE)]
    scalars = frozenset(v for v in hashable if not isinstance(v, bool))
    others = tuple(v for v in value if not (v is None or isinstance(v, _HASHABLE)))

    def member(actual: Any) -> bool:
        if isinstance(actual, bool):
            return actual in bools
        if actual is None or isinstance(actual, _HASHABLE):
            return actual in scalars
        return any(_strict_eq(actual, v) for v in others)

    shown = _short(_thaw(value))
    if op == "in":
        return member, lambda actual: f"value {_short(actual)} is not in {shown}"
    return (lambda actual: not member(actual)), lambda actual: f"value {_short(actual)} is in {shown}"


def _build_contains(op: str, path: str, value: Any) -> tuple[Test, Why]:
    def test(actual: Any) -> bool:
        if isinstance(actual, str):
            return isinstance(value, str) and value in actual
        if isinstance(actual, _SEQ):
            return any(_strict_eq(item, value) for item in actual)
        return False

    def why(actual: Any) -> str:
        if isinstance(actual, str) and not isinstance(value, str):
            return f"type mismatch: str vs {_type_name(value)}"
        if not isinstance(actual, _STR_OR_SEQ):
            return f"type mismatch: {_type_name(actual)} vs string or list"
        return f"value {_short(actual)} does not contain {_short(_thaw(value))}"

    return test, why


def _byte_searcher(regex: Any) -> Callable[[bytes], bool]:
    # re2's public search() spends ~3 µs a call building a Match and mapping byte offsets back to
    # characters, where a route needs only yes/no; the compiled RE2 object it wraps answers in
    # ~0.5 µs. That object is internal, so check it works and keep the public path as a fallback.
    raw = getattr(regex, "_regexp", None)
    if raw is not None and _UNANCHORED is not None:
        def fast(text: bytes) -> bool:
            return bool(raw.Match(_UNANCHORED, text, 0, len(text))[0][0] != -1)

        try:
            if fast(b"") == (regex.search(b"") is not None):
                return fast
        except Exception:
            pass
    return lambda text: regex.search(text) is not None


def _build_matches(op: str, path: str, value: Any) -> tuple[Test, Why]:
    if not isinstance(value, str):
        raise ConditionError(f"op 'matches' needs a string pattern, got {_type_name(value)}")
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.never_capture = True  # only a yes/no is wanted, and RE2 is faster without submatches
    try:
        regex = re2.compile(value, options)
    except (re2.error, ValueError, TypeError) as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ConditionError(f"invalid regex: {str(detail)[:_MAX_SHOWN]}") from None

    search = _byte_searcher(regex)

    def test(actual: Any) -> bool:
        if not isinstance(actual, str):
            return False
        try:
            data = actual.encode()
        except UnicodeEncodeError:
            # Lone surrogates cannot be UTF-8; match their raw bytes rather than fail.
            data = actual.encode("utf-8", "surrogatepass")
        return search(data)

    def why(actual: Any) -> str:
        if not isinstance(actual, str):
            return f"type mismatch: {_type_name(actual)} vs string"
        return f"value {_short(actual)} does not match {_short(value)}"

    return test, why


def _build_exists(op: str, path: str, value: Any) -> tuple[Test, Why]:
    if value is not None:
        raise ConditionError(f"op {op!r} takes no value")
    present = op == "exists"
    return (lambda actual: present), (lambda actual: "field exists")


_BUILDERS: Final[dict[str, Callable[[str, str, Any], tuple[Test, Why]]]] = {
    "eq": _build_eq, "ne": _build_eq,
    "gt": _build_order, "ge": _build_order, "lt": _build_order, "le": _build_order,
    "in": _build_in, "not_in": _build_in,
    "contains": _build_contains, "matches": _build_matches,
    "exists": _build_exists, "not_exists": _build_exists,
}
_VALUELESS: Final = frozenset({"exists", "not_exists"})


@dataclass(frozen=True, slots=True)
class Condition:
    """One test. Construction validates and compiles (raising ConditionError); list values are
    stored as tuples. Equality is over field, op and value only."""

    field: str
    op: str
    value: Any = dc_field(default=None, hash=False)
    _steps: tuple[_Step, ...] = dc_field(init=False, repr=False, compare=False)
    _test: Test = dc_field(init=False, repr=False, compare=False)
    _why: Why = dc_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.op, str) or self.op not in _BUILDERS:
            raise ConditionError(f"op {_short(self.op)} is not one of {', '.join(OPS)}")
        steps = _compile_path(self.field)
        value = _freeze(self.value)
        test, why = _BUILDERS[self.op](self.op, self.field, value)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "_steps", steps)
        object.__setattr__(self, "_test", test)
        object.__setattr__(self, "_why", why)

    def evaluate(self, target: Mapping[str, Any]) -> bool:
        try:
            actual = _resolve(self._steps, target)
            if actual is _MISSING:
                return self.op == "not_exists"
            return self._test(actual)
        except Exception:
            # A hostile payload object (a raising __eq__ or Mapping) fails the condition, not the route.
            return False

    def outcome(self, target: Mapping[str, Any]) -> tuple[bool, Any, str]:
        """(passed, actual value or None, reason): evaluate() with its working shown."""
        try:
            actual = _resolve(self._steps, target)
            if actual is _MISSING:
                passed = self.op == "not_exists"
                return passed, None, "ok" if passed else "missing field"
            if self._test(actual):
                return True, actual, "ok"
            return False, actual, self._why(actual)
        except Exception as exc:
            return False, None, f"error: {type(exc).__name__}"

    def to_config(self) -> dict[str, Any]:
        if self.op in _VALUELESS:
            return {"field": self.field, "op": self.op}
        return {"field": self.field, "op": self.op, "value": _thaw(self.value)}


@dataclass(frozen=True, slots=True)
class ConditionResult:
    condition: Condition
    passed: bool
    actual: Any
    reason: str
    index: str


@dataclass(frozen=True, slots=True)
class ConditionSet:
    """`when` all hold, and (if there are `any` groups) every condition of at least one group holds."""

    when: tuple[Condition, ...] = ()
    any: tuple[tuple[Condition, ...], ...] = ()

    def matches(self, target: Mapping[str, Any]) -> bool:
        for cond in self.when:
            if not cond.evaluate(target):
                return False
        if not self.any:
            return True
        for group in self.any:
            for cond in group:
                if not cond.evaluate(target):
                    break
            else:
                return True
        return False

    def explain(self, target: Mapping[str, Any]) -> list[ConditionResult]:
        labelled = [(f"when[{i}]", c) for i, c in enumerate(self.when)]
        labelled += [(f"any[{g}][{i}]", c) for g, group in enumerate(self.any) for i, c in enumerate(group)]
        results = []
        for index, cond in labelled:
            passed, actual, reason = cond.outcome(target)
            results.append(ConditionResult(cond, passed, actual, reason, index))
        return results

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.when:
            config["when"] = [c.to_config() for c in self.when]
        if self.any:
            config["any"] = [[c.to_config() for c in group] for group in self.any]
        return config


def _parse_condition(raw: Any) -> Condition:
    if not isinstance(raw, Mapping):
        raise ConditionError(f"expected a table with field and op, got {_type_name(raw)}")
    unknown = [k for k in raw if k not in ("field", "op", "value")]
    if unknown:
        raise ConditionError(f"unknown key {_short(unknown[0])}")
    for key in ("field", "op"):
        if key not in raw:
            raise ConditionError(f"missing {key!r}")
    op = raw["op"]
    if isinstance(op, str) and op in _BUILDERS:
        # An explicit value on exists (say `value = false`) reads as the opposite op: refuse it.
        if op in _VALUELESS and "value" in raw:
            raise ConditionError(f"op {op!r} takes no value")
        if op not in _VALUELESS and "value" not in raw:
            raise ConditionError(f"op {op!r} needs a value")
    return Condition(raw["field"], op, raw.get("value"))


def _parse_group(raw: Any, label: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, _SEQ):
        raise ConditionError(f"{label}: expected a list of conditions, got {_type_name(raw)}")
    if len(raw) > MAX_CONDITIONS:
        raise ConditionError(f"{label}: {len(raw)} conditions, at most {MAX_CONDITIONS}")
    conditions = []
    for i, item in enumerate(raw):
        try:
            conditions.append(_parse_condition(item))
        except ConditionError as exc:
            raise ConditionError(f"{label}[{i}]: {exc}") from None
    return tuple(conditions)


def _parse_groups(raw: Any) -> tuple[tuple[Condition, ...], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, _SEQ):
        raise ConditionError(f"any: expected a list of condition lists, got {_type_name(raw)}")
    if len(raw) > MAX_GROUPS:
        raise ConditionError(f"any: {len(raw)} groups, at most {MAX_GROUPS}")
    groups = []
    for g, group in enumerate(raw):
        if not isinstance(group, _SEQ):
            raise ConditionError(f"any[{g}]: expected a list of conditions, got {_type_name(group)}")
        # An empty group is vacuously true and would make the whole `any` match everything.
        if not group:
            raise ConditionError(f"any[{g}]: empty group")
        groups.append(_parse_group(group, f"any[{g}]"))
    return tuple(groups)


def parse_conditions(when: Any = None, any_: Any = None, *, route: str | None = None) -> ConditionSet | None:
    """Builds a route's conditions from config (`when`, `any`); None when there are none.
    Raises ConditionError naming the condition (`when[1]: ...`, `any[0][2]: ...`) and the reason."""
    try:
        all_of = _parse_group(when, "when")
        any_of = _parse_groups(any_)
    except ConditionError as exc:
        if route is None:
            raise
        raise ConditionError(f"route {_short(route)}: {exc}") from None
    if not all_of and not any_of:
        return None
    return ConditionSet(all_of, any_of)
