"""Pure mapping: Alertmanager webhook payloads and declared [[hooks]] → envelopes, and the JSON pointers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alertd.adapters import alertmanager, dotted_name, name_segment
from alertd.adapters.hooks import MISSING, HookDecl, Pointer, compile_hooks
from alertd.ingest import IngestError
from alertd.model import Severity
from alertd.routing import EVENT_NAME_RE, MAX_EVENT_NAME

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager_v4.json"


def documented() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def am_error(data: Any, max_batch: int = 500) -> IngestError:
    with pytest.raises(IngestError) as caught:
        alertmanager.to_envelopes(data, max_batch)
    return caught.value


def alert(**labels: Any) -> dict[str, Any]:
    return {"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2024-05-14T09:31:07Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom:9090/graph", "fingerprint": "f00d"}


def group(*alerts: Any, **extra: Any) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "alertd", "alerts": list(alerts), **extra}


# ------------------------------------------------------------------------------------------ alertmanager


def test_the_documented_payload_becomes_one_event_per_alert():
    envelopes = alertmanager.to_envelopes(documented(), 500)

    assert [(e.event, e.severity) for e in envelopes] == [
        ("alertmanager.instancedown", Severity.CRITICAL),
        ("alertmanager.instancedown", Severity.INFO),  # resolved: good news
        ("alertmanager.nodecpuhigh", Severity.WARNING),
    ]
    firing, resolved, cpu = (e.payload for e in envelopes)
    assert list(firing) == ["summary", "status", "labels", "annotations", "starts_at", "ends_at", "generator_url",
                            "fingerprint", "receiver", "external_url", "group_key"]
    assert firing["summary"] == "db-1:9100 has been down for more than 5 minutes"
    assert firing["status"] == "firing" and resolved["status"] == "resolved"
    assert firing["labels"] == {"alertname": "InstanceDown", "instance": "db-1:9100", "job": "node",
                                "severity": "critical"}
    assert firing["starts_at"] == "2024-05-14T09:31:07.402Z" and firing["ends_at"] == "0001-01-01T00:00:00Z"
    assert firing["generator_url"].startswith("http://prometheus.example.org:9090/graph")
    assert firing["fingerprint"] == "8c1f3a2b9d0e4f57"
    assert firing["receiver"] == "alertd"
    assert firing["external_url"] == "http://alertmanager.example.org:9093"
    assert firing["group_key"] == '{}:{job="node"}'
    # No summary annotation: the description stands in, so the rendered message says something.
    assert resolved["summary"] == "web-2:9100 of job node has been down for more than 5 minutes."
    assert cpu["summary"] == "CPU on db-1:9100 above 90% for 10 minutes"
    keys = [e.idempotency_key for e in envelopes]
    assert all(k is not None and k.startswith("am:") and len(k) == 43 for k in keys)
    assert len(set(keys)) == 3


def test_a_resent_group_has_the_same_keys_and_a_resolution_does_not():
    first = alertmanager.to_envelopes(documented(), 500)
    again = alertmanager.to_envelopes(documented(), 500)
    assert [e.idempotency_key for e in first] == [e.idempotency_key for e in again]

    resolved_later = documented()
    resolved_later["alerts"][0]["status"] = "resolved"
    resolved_later["alerts"][0]["endsAt"] = "2024-05-14T10:02:00Z"
    after = alertmanager.to_envelopes(resolved_later, 500)
    assert after[0].idempotency_key != first[0].idempotency_key
    assert after[0].severity is Severity.INFO
    assert [e.idempotency_key for e in after[1:]] == [e.idempotency_key for e in first[1:]]

    refired = documented()
    refired["alerts"][0]["startsAt"] = "2024-05-14T11:00:00Z"  # a new firing of the same alert
    assert alertmanager.to_envelopes(refired, 500)[0].idempotency_key != first[0].idempotency_key


def test_the_group_status_stands_in_for_a_missing_alert_status():
    body = group({"labels": {"alertname": "A"}}, status="resolved")
    [envelope] = alertmanager.to_envelopes(body, 500)
    assert envelope.payload["status"] == "resolved" and envelope.severity is Severity.INFO
    assert envelope.payload["annotations"] == {} and "summary" not in envelope.payload


def test_without_a_fingerprint_the_label_set_identifies_the_alert():
    one = group({"labels": {"alertname": "A", "job": "x"}, "startsAt": "t"})
    other_order = group({"labels": {"job": "x", "alertname": "A"}, "startsAt": "t"})
    other_alert = group({"labels": {"alertname": "A", "job": "y"}, "startsAt": "t"})
    [a], [b], [c] = (alertmanager.to_envelopes(body, 500) for body in (one, other_order, other_alert))
    assert a.idempotency_key == b.idempotency_key != c.idempotency_key
    assert a.payload["fingerprint"] == b.payload["fingerprint"]


@pytest.mark.parametrize(("label", "expected"), [
    ("critical", Severity.CRITICAL), ("CRITICAL", Severity.CRITICAL), ("urgent", Severity.CRITICAL),
    ("page", Severity.CRITICAL), ("error", Severity.ERROR), ("high", Severity.ERROR),
    ("warning", Severity.WARNING), ("warn", Severity.WARNING), ("medium", Severity.WARNING),
    ("info", Severity.INFO), ("low", Severity.INFO), ("none", Severity.INFO), (" Page ", Severity.CRITICAL),
    ("disaster", Severity.WARNING), ("", Severity.WARNING), (None, Severity.WARNING),
])
def test_severity_comes_from_the_severity_label(label, expected):
    labels = {"alertname": "A"} if label is None else {"alertname": "A", "severity": label}
    [envelope] = alertmanager.to_envelopes(group(alert(**labels)), 500)
    assert envelope.severity is expected


@pytest.mark.parametrize(("alertname", "expected"), [
    ("HighCPU", "alertmanager.highcpu"),
    ("disk.full", "alertmanager.disk_full"),
    ("node_filesystem-almost_full", "alertmanager.node_filesystem-almost_full"),
    ("High CPU on *", "alertmanager.high_cpu_on__"),
    ("*", "alertmanager.unnamed"),
    ("🔥🔥", "alertmanager.unnamed"),
    ("Überlast 🔥", "alertmanager.berlast__"),
    ("_leading", "alertmanager.leading"),
    ("-x.y", "alertmanager.x_y"),
    ("", "alertmanager.unnamed"),
    ("K", "alertmanager.k"),  # KELVIN SIGN lowercases to ASCII k
])
def test_alertnames_are_normalised_to_one_segment(alertname, expected):
    [envelope] = alertmanager.to_envelopes(group(alert(alertname=alertname)), 500)
    assert envelope.event == expected


def test_a_missing_alertname_is_unnamed_and_a_huge_one_is_capped():
    [unnamed] = alertmanager.to_envelopes(group(alert(job="x")), 500)
    assert unnamed.event == "alertmanager.unnamed"
    [huge] = alertmanager.to_envelopes(group(alert(alertname="A" * 100_000)), 500)
    assert huge.event == "alertmanager." + "a" * 180
    assert len(huge.event) <= MAX_EVENT_NAME and EVENT_NAME_RE.match(huge.event)


def test_huge_label_values_are_kept_verbatim():
    value = "x" * 200_000
    [envelope] = alertmanager.to_envelopes(group(alert(alertname="A", blob=value)), 500)
    assert envelope.payload["labels"]["blob"] == value


@pytest.mark.parametrize(("body", "field"), [
    ([], "body"),
    ("alerts", "body"),
    (None, "body"),
    ({"alerts": []}, "version"),
    ({"version": "3", "alerts": []}, "version"),
    ({"version": 4, "alerts": []}, "version"),
    ({"version": "4"}, "alerts"),
    ({"version": "4", "alerts": {"0": {}}}, "alerts"),
    ({"version": "4", "alerts": "[]"}, "alerts"),
    ({"version": "4", "alerts": []}, "alerts"),
    ({"version": "4", "alerts": [alert(alertname="A"), "not an alert"]}, "alerts[1]"),
    ({"version": "4", "alerts": [alert(alertname="A"), {"status": "firing"}]}, "alerts[1].labels"),
    ({"version": "4", "alerts": [{"labels": ["alertname", "A"]}]}, "alerts[0].labels"),
    ({"version": "4", "alerts": [{"labels": {"alertname": 7}}]}, "alerts[0].labels.alertname"),
    ({"version": "4", "alerts": [{"labels": {"alertname": "A", "n": None}}]}, "alerts[0].labels.n"),
    ({"version": "4", "alerts": [{"labels": {"alertname": "A", "n": {"deep": 1}}}]}, "alerts[0].labels.n"),
    ({"version": "4", "alerts": [{"labels": {}, "annotations": "text"}]}, "alerts[0].annotations"),
    ({"version": "4", "alerts": [{"labels": {}, "annotations": {"summary": 1}}]}, "alerts[0].annotations.summary"),
    ({"version": "4", "alerts": [{"labels": {}, "startsAt": 1715678000}]}, "alerts[0].startsAt"),
    ({"version": "4", "alerts": [{"labels": {}, "fingerprint": ["f"]}]}, "alerts[0].fingerprint"),
])
def test_malformed_payloads_are_a_clear_400(body, field):
    error = am_error(body)
    assert (error.status, error.code, error.field) == (400, "invalid_event", field)
    assert error.message


def test_the_version_error_says_what_is_expected():
    error = am_error({"version": "1", "alerts": [alert(alertname="A")]})
    assert '"4"' in error.message and "got 1" in error.message and "[[hooks]]" in error.message


def test_more_alerts_than_max_batch_is_413():
    error = am_error(group(*[alert(alertname=f"A{i}") for i in range(10_000)]), max_batch=500)
    assert (error.status, error.code, error.field) == (413, "too_large", "alerts")
    assert len(alertmanager.to_envelopes(group(*[alert(alertname="A")] * 500), 500)) == 500


# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(("raw", "segment", "dotted"), [
    ("Disk.Full", "disk_full", "disk.full"),
    ("..a..b..", "a__b__", "a.b"),
    ("a. .b", "a___b", "a.b"),
    ("🔥", "", ""),
    ("_._", "", ""),
])
def test_name_normalisation(raw, segment, dotted):
    assert name_segment(raw) == segment
    assert dotted_name(raw) == dotted


def test_dotted_names_are_capped_without_a_trailing_dot():
    name = dotted_name("a" * 179 + ".bcd", 180)
    assert name == "a" * 179 and EVENT_NAME_RE.match(name)


# ------------------------------------------------------------------------------------------ JSON pointer

RFC_DOC = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4, "i\\j": 5, 'k"l': 6, " ": 7,
           "m~n": 8}


@pytest.mark.parametrize(("pointer", "expected"), [
    ("", RFC_DOC),
    ("/foo", ["bar", "baz"]),
    ("/foo/0", "bar"),
    ("/a~1b", 1),
    ("/c%d", 2),
    ("/e^f", 3),
    ("/g|h", 4),
    ("/i\\j", 5),
    ('/k"l', 6),
    ("/ ", 7),
    ("/m~0n", 8),
])
def test_rfc_6901_examples(pointer, expected):
    assert Pointer.parse(pointer).resolve(RFC_DOC) == expected


def test_a_lone_slash_means_the_whole_document():
    # The one deliberate departure from RFC 6901 (where "/" is the key ""): it is what people write.
    assert Pointer.parse("/").resolve(RFC_DOC) is RFC_DOC


DOC = {"items": [{"id": "x"}, {"id": "y"}], "s": "text", "n": None, "a": {"": "empty key", "~1": "tilde-one"}}


@pytest.mark.parametrize(("pointer", "expected"), [
    ("/items/0/id", "x"),
    ("/items/1", {"id": "y"}),
    ("/items/-", MISSING),      # '-' is the element after the last: never there
    ("/items/2", MISSING),      # out of range
    ("/items/01", MISSING),     # leading zeros are not indexes
    ("/items/-1", MISSING),
    ("/items/x", MISSING),
    ("/items/99999999999999999999999", MISSING),
    ("/s/0", MISSING),          # a pointer into a string finds nothing
    ("/s/length", MISSING),
    ("/n", None),               # null is a value, not a miss
    ("/n/x", MISSING),
    ("/missing", MISSING),
    ("/a/", "empty key"),
    ("/a/~01", "tilde-one"),    # ~01 is the text "~1", not "/"
])
def test_pointer_edge_cases(pointer, expected):
    assert Pointer.parse(pointer).resolve(DOC) == expected


@pytest.mark.parametrize("text", ["ruleName", "#/a", "/a~2b", "/a~", "/" + "a" * 600])
def test_malformed_pointers_are_refused(text):
    with pytest.raises(ValueError):
        Pointer.parse(text)


# ------------------------------------------------------------------------------------------ hooks config


def hooks(*tables: dict[str, Any]):
    return compile_hooks([HookDecl.model_validate(t) for t in tables])


def config_error(table: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as caught:
        hooks({"name": "ok", "event": "=ok.event"}, table)
    assert not isinstance(caught.value, ValidationError)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("table", "expected"), [
    ({"name": "ok", "event": "=x"}, "hooks[1] (ok).name: duplicate hook name"),
    ({"name": "g", "event": "ruleName"}, "hooks[1] (g).event: 'ruleName' is neither a JSON pointer"),
    ({"name": "g", "event": "/a~2"}, "hooks[1] (g).event: '/a~2': '~' must be written '~0'"),
    ({"name": "g", "event": "=Grafana Alert"}, "hooks[1] (g).event: 'Grafana Alert' is not an event name"),
    ({"name": "g", "event": "="}, "hooks[1] (g).event: '' is not an event name"),
    ({"name": "g", "event": "=g.x", "event_prefix": "g."}, "hooks[1] (g).event_prefix: applies only to a pointer"),
    ({"name": "g", "event": "/x", "event_prefix": "grafana"}, "hooks[1] (g).event_prefix: 'grafana' must be"),
    ({"name": "g", "event": "/x", "event_prefix": "Grafana."}, "hooks[1] (g).event_prefix: 'Grafana.' must be"),
    ({"name": "g", "event": "/x", "severity": "=bogus"}, "hooks[1] (g).severity: unknown severity 'bogus'"),
    ({"name": "g", "event": "/x", "severity": "state"}, "hooks[1] (g).severity: 'state' is neither"),
    ({"name": "g", "event": "/x", "severity_map": {"ok": "info"}},
     "hooks[1] (g).severity: severity_map is set but severity is not"),
    ({"name": "g", "event": "/x", "severity": "/s", "severity_map": {"alerting": "severe"}},
     "hooks[1] (g).severity_map: 'alerting': unknown severity 'severe'"),
    ({"name": "g", "event": "/x", "payload": "=x"}, "hooks[1] (g).payload: must be a JSON pointer"),
    ({"name": "g", "event": "/x", "payload": "body"}, "hooks[1] (g).payload: 'body' is neither"),
    ({"name": "g", "event": "/x", "payload": {"rule": "rule"}}, "hooks[1] (g).payload: 'rule': 'rule' is neither"),
    ({"name": "g", "event": "/x", "payload": {"": "/a"}}, "hooks[1] (g).payload: payload field names"),
    ({"name": "g", "event": "/x", "idempotency_key": "=fixed"}, "hooks[1] (g).idempotency_key: must be a JSON"),
    ({"name": "g", "event": "/x", "items": "alerts"}, "hooks[1] (g).items: 'alerts' is neither"),
])
def test_hook_declarations_are_checked_at_load(table, expected):
    assert config_error(table).startswith(expected)


@pytest.mark.parametrize(("table", "where"), [
    ({"name": "alertmanager", "event": "/x"}, "name"),
    ({"name": "Grafana", "event": "/x"}, "name"),
    ({"name": "a" * 64, "event": "/x"}, "name"),
    ({"name": "g", "event": "/x", "evnt": "/y"}, "evnt"),
    ({"name": "g"}, "event"),
    ({"name": "g", "event": 7}, "event"),
    ({"name": "g", "event": "/x", "payload": ["/a"]}, "payload"),
])
def test_hook_declarations_refuse_unknown_keys_and_bad_types(table, where):
    with pytest.raises(ValidationError) as caught:
        HookDecl.model_validate(table)
    assert caught.value.errors()[0]["loc"][0] == where


def test_a_valid_declaration_compiles():
    compiled = hooks({"name": "grafana", "event": "/ruleName", "event_prefix": "grafana.", "severity": "/state",
                      "severity_map": {"Alerting": "critical", "ok": "info"}, "payload": "/",
                      "idempotency_key": "/id", "items": "/alerts"},
                     {"name": "deploys", "event": "=deploy.finished"})
    assert set(compiled) == {"grafana", "deploys"}
    assert compiled["grafana"].severity_map == {"alerting": Severity.CRITICAL, "ok": Severity.INFO}


# ------------------------------------------------------------------------------------------ hooks mapping

GRAFANA = {
    "receiver": "alertd", "status": "firing",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "High memory usage", "team": "blue"},
         "annotations": {"summary": "memory above 90% in us-1"}, "fingerprint": "c6eadffa33fcdf37",
         "ruleName": "High memory usage", "state": "Alerting"},
        {"status": "resolved", "labels": {"alertname": "Disk.Full"}, "annotations": {},
         "fingerprint": "bc97ff14869b13e3", "ruleName": "Disk.Full", "state": "ok"},
    ],
}


def grafana(**overrides: Any):
    table = {"name": "grafana", "event": "/ruleName", "event_prefix": "grafana.", "severity": "/state",
             "severity_map": {"alerting": "critical", "ok": "info"}, "idempotency_key": "/fingerprint",
             "items": "/alerts", **overrides}
    return hooks(table)["grafana"]


def hook_error(hook, body: Any, max_batch: int = 500) -> IngestError:
    with pytest.raises(IngestError) as caught:
        hook.to_envelopes(body, max_batch)
    return caught.value


def test_items_make_one_event_per_element():
    envelopes = grafana().to_envelopes(copy.deepcopy(GRAFANA), 500)
    assert [(e.event, e.severity, e.idempotency_key) for e in envelopes] == [
        ("grafana.high_memory_usage", Severity.CRITICAL, "hook:grafana:c6eadffa33fcdf37"),
        ("grafana.disk.full", Severity.INFO, "hook:grafana:bc97ff14869b13e3"),
    ]
    assert envelopes[0].payload == GRAFANA["alerts"][0]


def test_a_single_body_with_literals_and_a_payload_table():
    hook = hooks({"name": "ci", "event": "=ci.build.failed", "severity": "=error",
                  "payload": {"summary": "/title", "url": "/links/0/href", "source": "=ci", "gone": "/nope"}})["ci"]
    [envelope] = hook.to_envelopes({"title": "main is red", "links": [{"href": "https://ci/1"}]}, 500)
    assert envelope.event == "ci.build.failed" and envelope.severity is Severity.ERROR
    assert envelope.payload == {"summary": "main is red", "url": "https://ci/1", "source": "ci"}
    assert envelope.idempotency_key is None


def test_defaults_are_info_and_the_whole_body():
    hook = hooks({"name": "plain", "event": "/kind"})["plain"]
    body = {"kind": "Backup.Done", "size": 3}
    [envelope] = hook.to_envelopes(body, 500)
    assert (envelope.event, envelope.severity, envelope.payload) == ("backup.done", Severity.INFO, body)


@pytest.mark.parametrize(("value", "expected"), [
    ("Alerting", Severity.CRITICAL), (" OK ", Severity.INFO), ("warning", Severity.WARNING),
    ("urgent", Severity.CRITICAL), (None, Severity.INFO),
])
def test_severity_goes_through_the_map_then_alertd_names(value, expected):
    body = {"ruleName": "r", "state": value} if value is not None else {"ruleName": "r"}
    [envelope] = grafana(items=None, idempotency_key=None).to_envelopes(body, 500)
    assert envelope.severity is expected


def test_numeric_producer_severities_can_be_mapped():
    hook = hooks({"name": "p", "event": "=p.alert", "severity": "/priority",
                  "severity_map": {"1": "critical", "2": "error", "true": "warning"}})["p"]
    assert [hook.to_envelopes({"priority": p}, 500)[0].severity for p in (1, 2, True)] == [
        Severity.CRITICAL, Severity.ERROR, Severity.WARNING]
    error = hook_error(hook, {"priority": 5})
    assert (error.status, error.field) == (400, "severity") and "'5'" in error.message


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"alerts": [{"state": "ok"}]}, "items[0].event", "found no event name"),
    ({"alerts": [{"ruleName": "", "state": "ok"}]}, "items[0].event", "found no event name"),
    ({"alerts": [{"ruleName": "r"}, {"ruleName": 7}]}, "items[1].event", "must point at a string, found a number"),
    ({"alerts": [{"ruleName": {"a": 1}}]}, "items[0].event", "found an object"),
    ({"alerts": [{"ruleName": "r", "state": "pending"}]}, "items[0].severity", "'pending' is neither"),
    ({"alerts": [{"ruleName": "r", "state": ["x"]}]}, "items[0].severity", "must point at a string"),
    ({"alerts": [{"ruleName": "r", "fingerprint": {"x": 1}}]}, "items[0].idempotency_key", "found an object"),
    ({"alerts": [{"ruleName": "r", "fingerprint": True}]}, "items[0].idempotency_key", "found a boolean"),
    ({"alerts": ["text"]}, "items[0].event", "found no event name"),
    ({"alerts": {"0": {}}}, "items", "must point at an array, found an object"),
    ({}, "items", "must point at an array, found nothing"),
    ({"alerts": []}, "items", "empty array"),
    ([], "items", "found nothing"),
])
def test_mapping_errors_name_the_hook_field(body, field, words):
    error = hook_error(grafana(), body)
    assert (error.status, error.code, error.field) == (400, "invalid_event", field)
    assert "'grafana'" in error.message and words in error.message


def test_payload_must_be_an_object():
    hook = hooks({"name": "p", "event": "=p.x", "payload": "/data"})["p"]
    for body, found in (({"data": [1]}, "an array"), ({"data": "s"}, "a string"), ({}, "nothing")):
        error = hook_error(hook, body)
        assert (error.status, error.field) == (400, "payload") and found in error.message
    whole = hooks({"name": "w", "event": "=w.x"})["w"]
    assert hook_error(whole, ["not", "an", "object"]).field == "payload"


def test_the_normal_envelope_rules_still_apply():
    hook = hooks({"name": "d", "event": "=d.x"})["d"]
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    error = hook_error(hook, deep)
    assert (error.status, error.field) == (400, "payload") and "deeper than 32" in error.message


def test_more_items_than_max_batch_is_413():
    body = {"alerts": [{"ruleName": "r"}] * 10_000}
    error = hook_error(grafana(), body)
    assert (error.status, error.code, error.field) == (413, "too_large", "items")


def test_pointer_derived_names_are_normalised_and_fit():
    hook = grafana(items=None, severity=None, severity_map={}, idempotency_key=None)
    for raw, expected in [("High CPU 🔥", "grafana.high_cpu__"), ("🔥", "grafana.unnamed"), ("a..b", "grafana.a.b")]:
        assert hook.to_envelopes({"ruleName": raw}, 500)[0].event == expected
    long = hooks({"name": "l", "event": "/n", "event_prefix": "x" * 60 + "."})["l"]
    [envelope] = long.to_envelopes({"n": "y" * 1000}, 500)
    assert len(envelope.event) <= MAX_EVENT_NAME and EVENT_NAME_RE.match(envelope.event)


def test_idempotency_keys_are_scoped_to_the_hook_and_bounded():
    hook = hooks({"name": "k", "event": "=k.x", "idempotency_key": "/id"})["k"]
    assert hook.to_envelopes({"id": 42}, 500)[0].idempotency_key == "hook:k:42"
    assert hook.to_envelopes({"id": ""}, 500)[0].idempotency_key is None
    long_key = hook.to_envelopes({"id": "z" * 500}, 500)[0].idempotency_key
    assert long_key is not None and long_key.startswith("hook:k:sha256:") and len(long_key) <= 200
    assert long_key == hook.to_envelopes({"id": "z" * 500}, 500)[0].idempotency_key
