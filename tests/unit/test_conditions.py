from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertd.conditions import (
    MAX_CONDITIONS,
    MAX_GROUPS,
    OPS,
    Condition,
    ConditionError,
    ConditionSet,
    parse_conditions,
)
from alertd.model import Envelope, Severity
from alertd.routing import Route, match_routes, sort_routes


def target(payload: Any = None, *, event: str = "deploy.finished", severity: str = "error") -> dict[str, Any]:
    return {"event": event, "severity": severity, "payload": {} if payload is None else payload}


def one(field: str, op: str, value: Any = None) -> ConditionSet:
    raw = {"field": field, "op": op}
    if op not in ("exists", "not_exists"):
        raw["value"] = value
    conditions = parse_conditions([raw])
    assert conditions is not None
    return conditions


def cond(field: Any = "payload.x", op: Any = "eq", value: Any = 1) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


# op, value, a present value that passes, a present value of the wrong type, whether the wrong type passes
OP_TABLE = [
    ("eq", 5, 5, "5", False),
    ("ne", 5, 6, "5", True),  # "5" is simply not equal to 5
    ("gt", 5, 6, "6", False),
    ("ge", 5, 5, True, False),
    ("lt", 5, 4, [4], False),
    ("le", 5, 5, None, False),
    ("in", [1, 2], 2, "2", False),
    ("not_in", [1, 2], 3, "1", True),
    ("contains", "b", "abc", 123, False),
    ("contains", 2, [1, 2], {"2": 2}, False),
    ("exists", None, 0, None, True),  # exists means the key is there, even holding null
    ("not_exists", None, None, 1, False),
    ("matches", "^a.c$", "abc", 123, False),
]


@pytest.mark.parametrize(("op", "value", "good", "wrong", "wrong_passes"), OP_TABLE)
def test_every_op_on_present_missing_and_wrongly_typed_fields(
    op: str, value: Any, good: Any, wrong: Any, wrong_passes: bool
) -> None:
    conditions = one("payload.x", op, value)
    present_passes = op != "not_exists"
    assert conditions.matches(target({"x": good})) is present_passes
    assert conditions.matches(target({})) is (op == "not_exists")
    assert conditions.matches(target({"x": wrong})) is wrong_passes
    for payload in ({"x": good}, {}, {"x": wrong}):
        [result] = conditions.explain(target(payload))
        assert result.passed is conditions.matches(target(payload))


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le"])
def test_ordering_on_a_string_against_a_number_is_a_type_mismatch(op: str) -> None:
    [result] = one("payload.n", op, 10).explain(target({"n": "12"}))
    assert not result.passed
    assert result.reason == "type mismatch: str vs number"
    assert result.actual == "12"


def test_explain_reports_ok_missing_and_the_failed_comparison() -> None:
    conditions = parse_conditions([
        {"field": "payload.duration_s", "op": "gt", "value": 3600},
        {"field": "payload.env", "op": "eq", "value": "prod"},
        {"field": "payload.owner", "op": "exists"},
    ])
    assert conditions is not None
    results = conditions.explain(target({"duration_s": 12, "env": "prod"}))
    assert [(r.index, r.passed, r.reason) for r in results] == [
        ("when[0]", False, "value 12 is not gt 3600"),
        ("when[1]", True, "ok"),
        ("when[2]", False, "missing field"),
    ]
    assert results[2].actual is None
    assert results[0].condition == Condition("payload.duration_s", "gt", 3600)


def test_missing_field_fails_ne_and_not_in_too() -> None:
    assert not one("payload.env", "ne", "prod").matches(target({}))
    assert not one("payload.env", "not_in", ["prod"]).matches(target({}))
    assert one("payload.env", "not_exists").matches(target({}))


@pytest.mark.parametrize(("field", "payload", "expected"), [
    ("payload.a.b", {"a": {"b": 1}}, True),
    ("payload.items.0.id", {"items": [{"id": 1}]}, True),
    ("payload.items.1.id", {"items": [{"id": 0}, {"id": 1}]}, True),
    ("payload.items.5.id", {"items": [{"id": 1}]}, False),  # out of range
    ("payload.items.-1.id", {"items": [{"id": 1}]}, False),  # negative is not an index
    ("payload.items.x.id", {"items": [{"id": 1}]}, False),
    ("payload.items.0", {"items": {"0": 1}}, True),  # on a table "0" is just a key
    ("payload.name.0", {"name": "1abc"}, False),  # strings are not indexed
    ("payload.a.b", {"a": None}, False),
    ("payload.a.b", {"a": [1]}, False),
])
def test_nested_paths_and_list_indexes(field: str, payload: dict[str, Any], expected: bool) -> None:
    conditions = one(field, "eq", 1)
    assert conditions.matches(target(payload)) is expected
    assert conditions.explain(target(payload))[0].reason == ("ok" if expected else "missing field")


def test_event_and_severity_fields_are_top_level() -> None:
    assert one("event", "eq", "deploy.finished").matches(target())
    assert one("event", "matches", r"^deploy\.").matches(target())
    assert one("severity", "eq", "error").matches(target())


@pytest.mark.parametrize(("op", "value", "actual", "expected"), [
    ("gt", "2025-12-31T23:00:00+00:00", "2026-01-01T00:00:00Z", True),
    ("lt", "2025-12-31T23:00:00+00:00", "2026-01-01T00:00:00Z", False),
    ("gt", "2026-01-01T00:30:00Z", "2026-01-01T01:00:00+01:00", False),  # that is midnight UTC
    ("eq", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", True),
    ("eq", "2026-01-01T00:00:00", "2026-01-01T00:00:00Z", True),  # naive is UTC
    ("ge", "2026-01-01", "2026-01-01T00:00:00Z", True),
    ("ne", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00+00:00", False),
])
def test_timestamps_compare_as_times_across_offsets_and_z(
    op: str, value: str, actual: str, expected: bool
) -> None:
    assert one("payload.at", op, value).matches(target({"at": actual})) is expected


def test_toml_datetime_and_date_values_are_timestamps() -> None:
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    assert one("payload.at", "gt", aware).matches(target({"at": "2026-01-01T00:00:01Z"}))
    assert one("payload.at", "le", date(2026, 1, 1)).matches(target({"at": "2025-12-31T23:59:59Z"}))
    assert one("payload.at", "eq", datetime(2026, 1, 1)).matches(target({"at": "2026-01-01T00:00:00+00:00"}))


@pytest.mark.parametrize("actual", ["yesterday", "20260101", 1767225600, None])
def test_non_timestamp_values_never_compare_as_times(actual: Any) -> None:
    conditions = one("payload.at", "gt", "2025-01-01T00:00:00Z")
    assert not conditions.matches(target({"at": actual}))
    [result] = conditions.explain(target({"at": actual}))
    assert result.reason.startswith("type mismatch:")
    assert result.reason.endswith("vs timestamp")


@pytest.mark.parametrize(("op", "value", "severity", "expected"), [
    ("ge", "warning", "error", True),
    ("ge", "warning", "info", False),
    ("gt", "error", "critical", True),
    ("lt", "error", "warning", True),
    ("le", "info", "warning", False),
    ("eq", "ERROR", "error", True),  # names are case-insensitive, like Severity.parse
    ("ge", "urgent", "critical", True),
])
def test_severity_compares_by_rank(op: str, value: str, severity: str, expected: bool) -> None:
    assert one("severity", op, value).matches(target(severity=severity)) is expected


def test_severity_rank_matches_the_envelope_the_router_builds() -> None:
    envelope = Envelope(event="db.slow", payload={}, severity=Severity.CRITICAL)
    assert one("severity", "gt", "error").matches(envelope.as_match_target())


@pytest.mark.parametrize(("op", "value", "actual", "expected"), [
    ("gt", 0, True, False),
    ("ge", 1, True, False),
    ("eq", 1, True, False),
    ("eq", True, 1, False),
    ("eq", True, True, True),
    ("ne", 1, True, True),
    ("eq", 0, False, False),
    ("eq", 1, 1.0, True),  # numbers are numbers, only bool stands apart
    ("in", [1, 2], True, False),
    ("in", [True], 1, False),
    ("in", [True], True, True),
    ("eq", [1, 2], [1, True], False),
    ("eq", {"a": 1}, {"a": True}, False),
    ("eq", {"a": [1]}, {"a": [1]}, True),
    ("contains", 1, [True, 2], False),
    ("contains", True, [1, True], True),
])
def test_bools_are_not_numbers(op: str, value: Any, actual: Any, expected: bool) -> None:
    assert one("payload.v", op, value).matches(target({"v": actual})) is expected


def test_contains_is_substring_on_strings_and_membership_on_lists() -> None:
    assert one("payload.msg", "contains", "disk").matches(target({"msg": "disk full"}))
    assert one("payload.tags", "contains", "db").matches(target({"tags": ["api", "db"]}))
    assert not one("payload.tags", "contains", "d").matches(target({"tags": ["api", "db"]}))
    [result] = one("payload.msg", "contains", 5).explain(target({"msg": "5 disks"}))
    assert result.reason == "type mismatch: str vs int"


def test_regex_uses_search_semantics() -> None:
    assert one("payload.msg", "matches", r"after \d+s").matches(target({"msg": "x: timeout after 30s!"}))
    assert not one("payload.msg", "matches", r"^timeout").matches(target({"msg": "x: timeout"}))


@pytest.mark.parametrize("pattern", ["(", "a{2,1}", r"(?<=a)b", r"(a)\1"])
def test_regex_refuses_invalid_or_backtracking_only_patterns_at_load(pattern: str) -> None:
    with pytest.raises(ConditionError, match=r"^when\[0\]: invalid regex: "):
        parse_conditions([{"field": "payload.msg", "op": "matches", "value": pattern}])


def test_regex_refuses_a_non_string_pattern() -> None:
    with pytest.raises(ConditionError, match=r"^when\[0\]: op 'matches' needs a string pattern, got int$"):
        parse_conditions([{"field": "payload.msg", "op": "matches", "value": 5}])


def test_regex_catastrophic_pattern_runs_in_linear_time() -> None:
    conditions = one("payload.msg", "matches", "(a+)+$")
    assert conditions.matches(target({"msg": "a" * 100_000 + "!"})) is False
    assert conditions.matches(target({"msg": "a" * 100_000})) is True


def test_regex_on_unencodable_text_does_not_raise() -> None:
    assert one("payload.msg", "matches", "^x").matches(target({"msg": "x\udcff"}))
    assert one("payload.msg", "matches", "é").matches(target({"msg": "café"}))


def test_when_is_all_of() -> None:
    conditions = parse_conditions([
        {"field": "payload.env", "op": "eq", "value": "prod"},
        {"field": "payload.n", "op": "gt", "value": 1},
    ])
    assert conditions is not None
    assert conditions.matches(target({"env": "prod", "n": 2}))
    assert not conditions.matches(target({"env": "prod", "n": 1}))


def test_any_is_any_of_all_of_groups() -> None:
    conditions = parse_conditions(any_=[
        [cond("payload.env", "eq", "prod"), cond("payload.n", "gt", 1)],
        [{"field": "payload.page", "op": "eq", "value": True}],
    ])
    assert conditions is not None
    assert conditions.matches(target({"env": "prod", "n": 2}))
    assert conditions.matches(target({"page": True}))
    assert not conditions.matches(target({"env": "prod", "n": 0}))
    assert [r.index for r in conditions.explain(target())] == ["any[0][0]", "any[0][1]", "any[1][0]"]


def test_when_and_any_must_both_hold() -> None:
    conditions = parse_conditions(
        [{"field": "payload.env", "op": "eq", "value": "prod"}],
        [[{"field": "payload.n", "op": "gt", "value": 1}], [{"field": "payload.page", "op": "exists"}]],
    )
    assert conditions is not None
    assert conditions.matches(target({"env": "prod", "page": 1}))
    assert not conditions.matches(target({"env": "dev", "page": 1}))
    assert not conditions.matches(target({"env": "prod"}))


@pytest.mark.parametrize(("when", "any_"), [(None, None), ([], None), (None, []), ([], [])])
def test_no_conditions_parse_to_none(when: Any, any_: Any) -> None:
    assert parse_conditions(when, any_) is None


def test_to_config_round_trips_and_omits_empty_parts() -> None:
    config = {
        "when": [
            {"field": "payload.env", "op": "in", "value": ["prod", "staging"]},
            {"field": "payload.owner", "op": "exists"},
        ],
        "any": [[{"field": "payload.labels", "op": "eq", "value": {"team": ["core"]}}]],
    }
    conditions = parse_conditions(config["when"], config["any"])
    assert conditions is not None
    assert conditions.to_config() == config
    assert parse_conditions(conditions.to_config()["when"], conditions.to_config()["any"]) == conditions
    only_when = parse_conditions(config["when"])
    assert only_when is not None
    assert only_when.to_config() == {"when": config["when"]}


def test_a_condition_is_hashable_and_unaffected_by_later_changes_to_its_config() -> None:
    values = ["prod"]
    conditions = parse_conditions([{"field": "payload.env", "op": "in", "value": values}])
    assert conditions is not None
    values.append("dev")
    assert not conditions.matches(target({"env": "dev"}))
    assert hash(conditions) == hash(parse_conditions([cond("payload.env", "in", ["prod"])]))


@pytest.mark.parametrize(("when", "any_", "message"), [
    ([cond(), cond(op="gtt")], None,
     "when[1]: op 'gtt' is not one of eq, ne, gt, ge, lt, le, in, not_in, contains, exists, not_exists, "
     "matches"),
    ([{"op": "eq", "value": 1}], None, "when[0]: missing 'field'"),
    ([{"field": "payload.x", "value": 1}], None, "when[0]: missing 'op'"),
    ([{"field": "payload.x", "op": "eq"}], None, "when[0]: op 'eq' needs a value"),
    ([{"field": "payload.x", "op": "exists", "value": False}], None, "when[0]: op 'exists' takes no value"),
    ([cond() | {"vaule": 1}], None, "when[0]: unknown key 'vaule'"),
    ([cond(op="in", value="prod")], None, "when[0]: op 'in' needs a list value, got str"),
    ([cond(op="not_in", value=1)], None, "when[0]: op 'not_in' needs a list value, got int"),
    ([cond(op="gt", value=[1])], None, "when[0]: op 'gt' needs a number or timestamp, got list [1]"),
    ([cond(op="lt", value=True)], None, "when[0]: op 'lt' needs a number or timestamp, got bool True"),
    ([cond(field="severity", op="ge", value="loud")], None,
     "when[0]: op 'ge' needs a number, timestamp or severity name, got str 'loud'"),
    ([cond(field="payload..x")], None, "when[0]: field 'payload..x' has an empty segment"),
    ([cond(field="body.x")], None, "when[0]: field 'body.x' must start with payload, event or severity"),
    ([cond(field="event.name")], None, "field 'event.name': event is a string and has no sub-fields"),
    ([cond(field="payload" + ".a" * 32)], None, "has more than 32 segments"),
    ([cond(field="")], None, "when[0]: field must be a non-empty string, got str"),
    ([cond(field=["payload", "x"])], None, "when[0]: field must be a non-empty string, got list"),
    (None, [[cond(), cond(), cond(op="matches", value="(")]], "any[0][2]: invalid regex: missing ): ("),
    (None, [[cond()], []], "any[1]: empty group"),
    (None, [cond()], "any[0]: expected a list of conditions, got dict"),
    (None, {"when": []}, "any: expected a list of condition lists, got dict"),
    (cond(), None, "when: expected a list of conditions, got dict"),
    ([cond()] * (MAX_CONDITIONS + 1), None, f"when: {MAX_CONDITIONS + 1} conditions, at most 64"),
    (None, [[cond()]] * (MAX_GROUPS + 1), f"any: {MAX_GROUPS + 1} groups, at most {MAX_GROUPS}"),
    (None, [[cond()] * (MAX_CONDITIONS + 1)], f"any[0]: {MAX_CONDITIONS + 1} conditions"),
])
def test_config_errors_name_the_condition_and_the_reason(when: Any, any_: Any, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_conditions(when, any_)
    assert message in str(caught.value)


def test_config_errors_name_the_route_when_given() -> None:
    with pytest.raises(ConditionError, match=r"^route 'checkout': when\[0\]: op 'gtt' is not one of"):
        parse_conditions([cond(op="gtt")], route="checkout")


def test_config_errors_never_echo_long_values() -> None:
    huge = "x" * 10_000
    for bad in (cond(op=huge), cond(field="payload." + huge), cond(op="gt", value=huge),
                cond(op="matches", value="(" + huge), {huge: 1}):
        with pytest.raises(ConditionError) as caught:
            parse_conditions([bad], route=huge)
        assert len(str(caught.value)) < 250


def test_a_condition_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="op"):
        Condition("payload.x", "between", 1)


@pytest.mark.parametrize("raw", ["payload.x > 1", None, 5, ["payload.x", "eq", 1]])
def test_hostile_condition_that_is_not_a_table_is_refused(raw: Any) -> None:
    with pytest.raises(ConditionError, match=r"^when\[0\]: expected a table with field and op"):
        parse_conditions([raw])


@pytest.mark.parametrize(("value", "message"), [
    ({1, 2}, "value of type set is not supported"),
    (object(), "value of type object is not supported"),
    (b"bytes", "value of type bytes is not supported"),
    ({1: "a"}, "value has a non-string key"),
])
def test_hostile_value_types_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        parse_conditions([cond(value=value)])


def deep(levels: int, leaf: Any, *, key: str | None = "a") -> Any:
    node = leaf
    for _ in range(levels):
        node = {key: node} if key is not None else [node]
    return node


def test_a_deeply_nested_condition_value_is_refused_without_recursing() -> None:
    with pytest.raises(ConditionError, match="nested deeper than"):
        parse_conditions([cond(value=deep(10_000, 1, key=None))])


@pytest.mark.parametrize("op", [op for op in OPS if op not in ("matches", "gt", "ge", "lt", "le")])
def test_a_10000_deep_payload_never_raises(op: str) -> None:
    payload = deep(10_000, 1)
    lists = deep(10_000, 1, key=None)
    value: Any = {"in": [[1]], "not_in": [[1]]}.get(op, [[1]])
    fields = ["payload.a", "payload" + ".a" * 31, "payload.l.0.0.0"]
    for field in fields:
        conditions = one(field, op, value)
        for t in (target({"a": payload, "l": lists}), target(payload), target(lists)):
            assert isinstance(conditions.matches(t), bool)
            for result in conditions.explain(t):
                assert len(result.reason) < 200


@pytest.mark.parametrize("bad_target", [None, 5, "payload", [1, 2], {"payload": None}, {"payload": [1]}])
def test_a_target_that_is_not_an_envelope_fails_quietly(bad_target: Any) -> None:
    conditions = one("payload.x", "eq", 1)
    assert conditions.matches(bad_target) is False
    assert conditions.explain(bad_target)[0].reason == "missing field"


class Exploding(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


class BadEq:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        raise RuntimeError("boom")


@pytest.mark.parametrize("payload", [Exploding(), {"x": Exploding()}, {"x": BadEq()}, {"x": [BadEq()]}])
@pytest.mark.parametrize(("op", "value"), [("eq", {"a": 1}), ("ne", 1), ("in", [[1]]), ("contains", 1),
                                           ("gt", 1), ("matches", "a")])
def test_hostile_payload_objects_fail_the_condition_instead_of_raising(
    payload: Any, op: str, value: Any
) -> None:
    conditions = one("payload.x", op, value)
    passed = conditions.matches(target(payload))
    [result] = conditions.explain(target(payload))
    assert result.passed is passed


def test_huge_values_in_a_payload_are_explained_briefly() -> None:
    conditions = parse_conditions([cond(op="eq", value=1), cond(field="payload.s", op="eq", value=1)])
    assert conditions is not None
    results = conditions.explain(target({"x": 10**5000, "s": "y" * 1_000_000}))
    assert not any(r.passed for r in results)
    assert all(len(r.reason) < 200 for r in results)


# Hypothesis: whatever the payload and whichever valid conditions, no exception, and matches()
# agrees with the all-of / any-of logic applied to explain().

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.sampled_from("abxy0"), children, max_size=4)),
    max_leaves=20,
)
paths = st.sampled_from(
    ["payload.a", "payload.b.x", "payload.a.0", "payload.a.0.b", "payload.0", "severity", "event"])
timestamps = st.datetimes(timezones=st.none() | st.just(UTC)).map(lambda d: d.isoformat())


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    field, op = draw(paths), draw(st.sampled_from(OPS))
    if op in ("exists", "not_exists"):
        return {"field": field, "op": op}
    if op in ("gt", "ge", "lt", "le"):
        value: Any = draw(st.integers() | st.floats(allow_nan=False) | timestamps)
    elif op in ("in", "not_in"):
        value = draw(st.lists(json_values, max_size=4))
    elif op == "matches":
        value = draw(st.sampled_from(["a", "^x", r"\d+$", "(a+)+$", "(?i)B", ""]))
    else:
        value = draw(json_values)
    return {"field": field, "op": op, "value": value}


envelopes = st.fixed_dictionaries({
    "event": st.text(max_size=10),
    "severity": st.sampled_from(["info", "warning", "error", "critical", "bogus"]) | json_values,
    "payload": json_values,
})


@settings(max_examples=200, deadline=None)
@given(when=st.lists(conditions(), max_size=3),
       any_=st.lists(st.lists(conditions(), min_size=1, max_size=3), max_size=3),
       envelope=envelopes)
def test_matches_never_raises_and_agrees_with_explain(
    when: list[dict[str, Any]], any_: list[list[dict[str, Any]]], envelope: dict[str, Any]
) -> None:
    parsed = parse_conditions(when, any_)
    if parsed is None:
        return
    results = parsed.explain(envelope)
    assert len(results) == len(when) + sum(len(g) for g in any_)
    all_of = all(r.passed for r in results if r.index.startswith("when"))
    groups: dict[str, list[bool]] = {}
    for r in results:
        if r.index.startswith("any"):
            groups.setdefault(r.index.split("]")[0], []).append(r.passed)
    any_of = not groups or any(all(g) for g in groups.values())
    assert parsed.matches(envelope) is (all_of and any_of)
    assert all(r.reason == "ok" for r in results if r.passed)


def test_routes_with_conditions_fan_out_only_when_they_hold() -> None:
    long_deploys = parse_conditions(
        [{"field": "payload.duration_s", "op": "gt", "value": 3600},
         {"field": "payload.env", "op": "in", "value": ["prod", "staging"]}],
        route="slow-deploys",
    )
    routes = sort_routes([
        Route(name="all-deploys", match="deploy.*", channels=("log",)),
        Route(name="slow-deploys", match="deploy.*", channels=("pager",), priority=10,
              conditions=long_deploys),
    ])
    slow = Envelope("deploy.finished", {"duration_s": 7200, "env": "prod"}, Severity.INFO)
    quick = Envelope("deploy.finished", {"duration_s": 60, "env": "prod"}, Severity.INFO)
    assert [r.name for r in match_routes(routes, slow.event, slow.severity, slow.as_match_target())] == [
        "slow-deploys", "all-deploys"]
    assert [r.name for r in match_routes(routes, quick.event, quick.severity, quick.as_match_target())] == [
        "all-deploys"]
    # a caller that forgets the target gets the conditional route skipped, not an exception
    assert [r.name for r in match_routes(routes, slow.event, slow.severity)] == ["all-deploys"]
