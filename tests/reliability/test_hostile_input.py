"""Property tests with hypothesis: the envelope parser, the route matcher and POST /v1/events on an
in-process daemon never fail with anything but their documented errors, whatever they are given."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.api.events import parse_batch
from alertd.conditions import OPS, ConditionError, parse_conditions
from alertd.ingest import IngestError, parse_envelope
from alertd.model import Envelope, Severity
from alertd.routing import Route, explain_route, match_routes
from tests.integration.conftest import PRODUCER_KEY
from tests.reliability.helpers import ThreadedDaemon, assert_error_shape, inprocess_toml, record

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(["", "info", "URGENT", "critical ", "pr.run.failed", "*", "a.*", "\n", "\x00",
                              "2026-01-01T00:00:00Z", "1e309", "-0", "é", "payload.a"]))
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=5)
                           | st.dictionaries(st.text(max_size=12), children, max_size=5), max_leaves=25)
event_names = st.sampled_from(["pr.run.failed", "a", "a.b.c", "A.b", "a..b", "a.*", "*", "-x", "x" * 201, "é.x",
                               "pr.run.failed\n", "a_b-c.d", " a"]) | st.text(max_size=30)
severities = st.sampled_from(["info", "warning", "error", "critical", "urgent", "URGENT", "Warning", "fatal", ""])
actions = st.lists(st.fixed_dictionaries({}, optional={"name": st.text(max_size=70) | json_values,
                                                       "label": st.text(max_size=110) | json_values,
                                                       "x": json_values}), max_size=12)
envelopes = st.fixed_dictionaries({}, optional={
    "event": event_names | json_values,
    "payload": st.dictionaries(st.text(max_size=12), json_values, max_size=6) | json_values,
    "severity": severities | json_values,
    "idempotency_key": st.text(max_size=210) | json_values,
    "actions": actions | json_values,
    "extra": json_values,
})
bodies = envelopes | st.lists(envelopes, max_size=4) | json_values
# well-formed envelopes with hostile payload values: these get past validation into routing and the store
plausible = st.fixed_dictionaries(
    {"event": st.sampled_from(["pr.run.failed", "deploy.prod", "a", "x.y-z_1"]),
     "payload": st.fixed_dictionaries({}, optional={"n": json_values, "env": json_values, "msg": json_values,
                                                    "password": json_values, "other": json_values})},
    optional={"severity": st.sampled_from(["info", "warning", "error", "critical", "urgent"]),
              "idempotency_key": st.text(min_size=1, max_size=200)})
http_bodies = plausible | st.lists(plausible, min_size=1, max_size=3) | bodies


def deep(levels: int, leaf: Any = 1) -> Any:
    node: Any = leaf
    for n in range(levels):
        node = {"k": node} if n % 2 else [node]
    return node


def default_severity(name: str) -> Severity:
    return Severity.ERROR if name.startswith("pr.") else Severity.INFO


@settings(FAST, max_examples=400)
@given(raw=bodies, where=st.sampled_from(["", "[3]."]))
def test_parse_envelope_raises_only_ingest_errors(raw: Any, where: str) -> None:
    try:
        envelope = parse_envelope(raw, where, default_severity)
    except IngestError as exc:
        assert exc.status == 400 and exc.code == "invalid_event" and isinstance(exc.field, str)
        assert exc.field.startswith(where.rstrip(".")) or exc.field == "body"
        return
    assert isinstance(envelope, Envelope) and isinstance(envelope.payload, dict)
    assert isinstance(envelope.severity, Severity)


@settings(FAST, max_examples=200)
@given(raw=bodies, max_batch=st.integers(min_value=1, max_value=5))
def test_parse_batch_raises_only_ingest_errors(raw: Any, max_batch: int) -> None:
    try:
        parsed = parse_batch(raw, max_batch, default_severity)
    except IngestError as exc:
        assert exc.status in (400, 413)
        return
    assert 1 <= len(parsed) <= max_batch


@pytest.mark.parametrize("levels", [31, 32, 33, 1000, 10_000, 100_000])
def test_a_deep_payload_is_refused_without_recursion(levels: int) -> None:
    envelope = {"event": "a.b", "payload": {"k": deep(levels)}}
    if levels < 31:
        parse_envelope(envelope)
        return
    with pytest.raises(IngestError) as info:
        parse_envelope(envelope)
    assert info.value.field == "payload"


fields = st.sampled_from(["payload.a", "payload.a.b", "payload.items.0.id", "payload.0", "event", "severity",
                          "payload", "payload.-1", "payload." + ".".join("x" * 40), "event.x", "payload..a",
                          "payload.é", ""]) | st.text(max_size=20) | json_values
regexes = st.sampled_from(["(a+)+$", "[", "\\", "(?P<x>a)(?P=x)", "^prod$", "a{1000}{1000}", "(?=x)", ".*", "\\C",
                           "\\p{Greek}", "x" * 300])
values = (json_values | regexes | st.datetimes() | st.dates()
          | st.datetimes(timezones=st.just(dt.UTC)) | st.lists(json_values, max_size=4))
conditions = st.fixed_dictionaries({}, optional={"field": fields, "op": st.sampled_from(OPS) | json_values,
                                                 "value": values, "extra": json_values})
whens = st.none() | st.lists(conditions, max_size=4) | json_values
anys = st.none() | st.lists(st.lists(conditions, max_size=3), max_size=3) | json_values
patterns = st.sampled_from(["*", "a.*", "a.b", "pr.*", "pr.run.failed"]) | st.text(max_size=10)
targets = st.fixed_dictionaries({"event": event_names, "severity": severities | json_values,
                                 "payload": st.dictionaries(st.text(max_size=8), json_values, max_size=5)
                                 | json_values})


@settings(FAST, max_examples=400)
@given(when=whens, any_=anys, pattern=patterns, floor=st.sampled_from(list(Severity)),
       name=event_names, severity=st.sampled_from(list(Severity)), target=targets)
def test_route_matching_raises_only_condition_errors(when: Any, any_: Any, pattern: str, floor: Severity,
                                                     name: str, severity: Severity, target: dict[str, Any]) -> None:
    try:
        conditions_set = parse_conditions(when, any_, route="fuzz")
    except ConditionError as exc:
        assert str(exc).startswith("route ")
        return
    route = Route("fuzz", pattern, ("c",), floor, conditions=conditions_set)
    matched = match_routes([route], name, severity, target)
    assert matched in ([], [route])
    verdict = explain_route(route, name, severity, target)
    assert verdict.matched == bool(matched) or not isinstance(target, dict)
    if conditions_set is not None:
        for result in conditions_set.explain(target):
            assert isinstance(result.reason, str)
        conditions_set.to_config()


@settings(FAST, max_examples=200)
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5), op=st.sampled_from(OPS),
       value=values)
def test_every_op_evaluates_hostile_payloads_without_raising(payload: dict[str, Any], op: str, value: Any) -> None:
    raw = {"field": "payload.a", "op": op} | ({} if op in ("exists", "not_exists") else {"value": value})
    try:
        conditions_set = parse_conditions([raw])
    except ConditionError:
        return
    assert conditions_set is not None
    for target in ({"event": "a", "severity": "info", "payload": payload},
                   {"event": "a", "severity": "info", "payload": {"a": payload}},
                   {"event": "a", "severity": "info", "payload": {"a": deep(5000)}}):
        assert conditions_set.matches(target) in (True, False)


# ------------------------------------------------------------------------------------------ over HTTP


@pytest.fixture
def inprocess(tmp_path: Path) -> Iterator[ThreadedDaemon]:
    # A route with conditions, so random payloads go through the matcher too; its webhook points at a
    # loopback address that [net] allow_private = [] refuses: deliveries die without a connection.
    extra = """
[[channels]]
name = "nowhere"
type = "webhook"
url = "http://127.0.0.1:9/x"
[[routes]]
name = "conditional"
match = "*"
channels = ["nowhere"]
when = [ { field = "payload.n", op = "gt", value = 3 } ]
any = [ [ { field = "payload.env", op = "in", value = ["prod", "staging"] } ],
        [ { field = "payload.msg", op = "matches", value = "^x.*y$" },
          { field = "severity", op = "ge", value = "error" } ] ]
"""
    daemon = ThreadedDaemon(inprocess_toml(tmp_path, extra)).start()
    yield daemon
    daemon.stop()


def test_random_bodies_over_http_are_answered_2xx_or_4xx_json(inprocess: ThreadedDaemon) -> None:
    assert inprocess.port is not None
    conn = http.client.HTTPConnection("127.0.0.1", inprocess.port, timeout=10)
    statuses: dict[int, int] = {}

    def post(data: bytes) -> None:
        conn.request("POST", "/v1/events", body=data, headers={"x-api-key": PRODUCER_KEY,
                                                                "content-type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status < 500, (response.status, data[:300], body[:300])
        assert response.getheader("content-type", "").startswith("application/json"), response.getheaders()
        if response.status >= 400:
            assert_error_shape(body, response.status)
        else:
            answer = json.loads(body)
            items = answer.get("events", [answer])
            assert all(isinstance(item["id"], str) for item in items)

    @settings(FAST, max_examples=400)
    @given(body=http_bodies)
    def as_json(body: Any) -> None:
        post(json.dumps(body, default=str).encode())

    @settings(FAST, max_examples=100)
    @given(data=st.binary(max_size=200) | st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")))
    def as_bytes(data: bytes) -> None:
        post(data)

    hostile = (b"\xff\xfe{}", b'{"event": "a\xc3", "payload": {}}', b"[" * 10_000 + b"]" * 10_000,
               b'{"event": "a.b", "payload": {"k": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}", b"NaN",
               b'{"event": "a.b", "payload": {"x": 1e999}}', b'{"event":"a.b","event":"c.d"}')
    try:
        as_json()
        as_bytes()
        for data in hostile:
            post(data)
    finally:
        conn.close()
    assert not math.isnan(sum(statuses.values()))
    record("hostile bodies over HTTP (in-process)", requests=sum(statuses.values()),
           by_status=dict(sorted(statuses.items())))


# Found by schemathesis: a duration of the wrong JSON type (null, a list, an object) raised TypeError inside
# a pydantic validator, which pydantic does not turn into a validation error: a 500 instead of a 400.
WRONG_TYPED = [
    ("POST", "/v1/admin/channels", {"name": "typed", "type": "webhook", "url": "http://a.example/", "timeout": None}),
    ("POST", "/v1/admin/channels", {"name": "typed", "type": "webhook", "url": "http://a.example/", "timeout": [1]}),
    ("POST", "/v1/admin/routes", {"name": "typed", "match": "*", "channels": ["nowhere"], "suppress_for": {"a": 1}}),
    ("POST", "/v1/admin/checks", {"name": "typed.check", "period": ["1h"]}),
    ("POST", "/v1/admin/checks", {"name": "typed.check", "period": "1h", "grace": None}),
    ("POST", "/v1/admin/silences", {"event": "a.*", "duration": [2], "comment": "typed"}),
    ("POST", "/v1/expectations", {"key": "typed", "within": ["30m"]}),
    ("GET", "/v1/admin/checks?state=bogus", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRONG_TYPED)
def test_wrong_json_types_in_durations_are_400_not_500(inprocess: ThreadedDaemon, method: str, path: str,
                                                       body: Any) -> None:
    from tests.integration.conftest import ADMIN_KEY

    assert inprocess.port is not None
    conn = http.client.HTTPConnection("127.0.0.1", inprocess.port, timeout=10)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"x-api-key": ADMIN_KEY, "content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    assert response.status == 400, (response.status, data[:300])
    assert_error_shape(data, 400)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("kind", ["ack", "approve"])
def test_a_non_ascii_link_token_is_400_not_500(inprocess: ThreadedDaemon, method: str, kind: str) -> None:
    # Found by schemathesis: hmac.compare_digest raised TypeError on a non-ASCII token.
    assert inprocess.port is not None
    conn = http.client.HTTPConnection("127.0.0.1", inprocess.port, timeout=10)
    try:
        conn.request(method, f"/{kind}/abc.%C3%A9%C3%9F", body=b"" if method == "POST" else None)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 400, response.status
