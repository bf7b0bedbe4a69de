"""The OpenAPI document (alertd/api/openapi.json) against the app that serves it: every route the app serves is
documented and nothing else is; the document is valid OpenAPI 3.1; every $ref resolves; every error is the one
Error schema; the enums, limits and field lists track the code; real serialised answers fit their schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

import alertd
from alertd import checks, conditions, config, ingest, routing
from alertd.api import admin, openapi, params, serialize
from alertd.api import checks as checks_api
from alertd.api.app import build_app
from alertd.auth import ApiKey
from alertd.channels import REGISTRY
from alertd.channels.base import CHANNEL_NAME_PATTERN, ChannelConfig
from alertd.channels.webhook import WebhookConfig
from alertd.model import Attempt, Delivery, DeliveryState, Event, Origin, Severity
from alertd.scheduler import Check

DOC_PATH = Path(openapi.__file__).with_name(openapi.DOCUMENT)
OPENAPI_PATH = "/v1/admin/openapi.json"
# /ui is the operator's web pages (HTML for people, behind its own session), not API: not documented here.
DOCUMENTED_PREFIXES = ("/v1/", "/health", "/ready", "/metrics", "/ack", "/approve")
# Pages a person opens from a message: the signed token is the credential, and they answer HTML.
LINK_PAGES = ("/ack/{token}", "/approve/{token}")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
INGEST_PATHS = ("/v1/events", "/v1/hooks/alertmanager", "/v1/hooks/{name}")
ERROR_REF = {"$ref": "#/components/schemas/Error"}
# The one 5xx whose body is not an Error: readiness answers 503 with its Ready report.
NOT_ERROR_SHAPED = {("/ready", "get", "503")}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return orjson.loads(DOC_PATH.read_bytes())


def fake_runtime(**extra: Any) -> SimpleNamespace:
    """build_app reads only `config.server` (body limit; the UI's public_url) while building."""
    server = SimpleNamespace(max_body_bytes=262_144, public_url="http://127.0.0.1:8040")
    return SimpleNamespace(config=SimpleNamespace(server=server), **extra)


def app_with_openapi(runtime: Any) -> web.Application:
    """The app exactly as app.py builds it, plus the document's route if app.py does not register it yet."""
    app = build_app(runtime)
    if not any(r.method == "GET" and r.resource is not None and r.resource.canonical == OPENAPI_PATH
               for r in app.router.routes()):
        app.router.add_get(OPENAPI_PATH, openapi.serve)
    return app


def template(path: str) -> str:
    """`/v1/admin/events/{id}` and `/v1/admin/events/{event_id}` (or `{id:.*}`) compare equal."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:  # aiohttp adds HEAD to every GET
            continue
        path = route.resource.canonical
        if path.startswith(DOCUMENTED_PREFIXES):
            served.add((route.method, template(path)))
    return served


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref}: only local references are used"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (at {part!r})"
        node = node[part]
    return node


def deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def validator(doc: dict[str, Any], schema_name: str) -> Draft202012Validator:
    registry: Registry = Registry().with_resource("urn:alertd:openapi", DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"urn:alertd:openapi#/components/schemas/{schema_name}"},
                                registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def fits(doc: dict[str, Any], schema_name: str, instance: Any) -> bool:
    return validator(doc, schema_name).is_valid(instance)


def enum_of(doc: dict[str, Any], schema_name: str) -> list[str]:
    return doc["components"]["schemas"][schema_name]["enum"]


def properties(doc: dict[str, Any], schema_name: str) -> set[str]:
    return set(doc["components"]["schemas"][schema_name]["properties"])


# ---- completeness ------------------------------------------------------------------------------------------

def test_every_served_route_is_documented_and_nothing_else(doc: dict[str, Any]) -> None:
    served = served_routes(app_with_openapi(fake_runtime()))
    documented = {(method.upper(), template(path)) for path, method, _ in operations(doc)}
    assert ("GET", OPENAPI_PATH) in served
    assert ("POST", "/v1/hooks/{}") in documented and ("POST", "/v1/hooks/alertmanager") in documented
    assert sorted(served - documented) == [], "served but not in openapi.json"
    assert sorted(documented - served) == [], "in openapi.json but not served"


def test_path_parameters_match_templates(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        declared = [deref(doc, p) for p in doc["paths"][path].get("parameters", []) + operation.get("parameters", [])]
        in_path = {p["name"] for p in declared if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{([^}]+)\}", path)), f"{method} {path}"
        assert all(p["required"] for p in declared if p["in"] == "path"), f"{method} {path}"


# ---- validity ----------------------------------------------------------------------------------------------

def test_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(doc).validate()
    for name, schema in doc["components"]["schemas"].items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"components/schemas/{name}: {exc}")


def test_every_ref_resolves_and_every_component_is_used(doc: dict[str, Any]) -> None:
    used = set()
    for ref in refs_in(doc):
        resolve(doc, ref)
        used.add(ref)
    for kind in ("schemas", "parameters", "responses", "headers"):
        for name in doc["components"][kind]:
            assert f"#/components/{kind}/{name}" in used, f"components/{kind}/{name} is never referenced"


def test_info_servers_and_security(doc: dict[str, Any]) -> None:
    assert doc["info"]["title"] == "alertd"
    assert doc["servers"] == [{"url": "/"}]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header", "name": "x-api-key"}
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"apiKey": []}, {"bearer": []}]
    for path, method, operation in operations(doc):
        if path in ("/health", "/ready", *LINK_PAGES):
            assert operation["security"] == [], f"{method} {path} needs no key"
        else:
            assert "security" not in operation, f"{method} {path} must keep the global key requirement"


def test_operations_are_named_and_succeed_somehow(doc: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in operations(doc)]
    assert all(ids) and len(ids) == len(set(ids)), ids
    for path, method, operation in operations(doc):
        assert operation.get("summary"), f"{method} {path}"
        assert any(code.startswith("2") for code in operation["responses"]), f"{method} {path} has no 2xx"
        if path.startswith("/v1/admin/"):
            assert "Admin-only" in operation["description"], f"{method} {path} must say it is admin-only"


def test_every_error_response_is_the_error_schema(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        responses = operation["responses"]
        for code, response in responses.items():
            if code[0] not in "45" or (path, method, code) in NOT_ERROR_SHAPED:
                continue
            if path in LINK_PAGES:
                assert "text/html" in deref(doc, response)["content"], f"{method} {path} {code} is a page"
                continue
            response = deref(doc, response)
            assert response["content"] == {"application/json": {"schema": ERROR_REF}}, f"{method} {path} {code}"
        if path.startswith("/v1/"):
            assert "401" in responses, f"{method} {path}: every /v1/ path can answer 401"
            assert "WWW-Authenticate" in deref(doc, responses["401"])["headers"]
        if path.startswith("/v1/admin/"):
            assert "403" in responses, f"{method} {path}: producer keys get 403 on admin paths"
        if "requestBody" in operation:
            assert "413" in responses, f"{method} {path} reads a body, so can answer 413"
    for path in INGEST_PATHS:
        unavailable = deref(doc, doc["paths"][path]["post"]["responses"]["503"])
        assert "Retry-After" in unavailable["headers"], path
    ready_503 = doc["paths"]["/ready"]["get"]["responses"]["503"]
    assert ready_503["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Ready"}


# ---- the document tracks the code --------------------------------------------------------------------------

def test_enums_limits_and_fields_track_the_code(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert enum_of(doc, "Severity") == [s.label for s in Severity]
    assert enum_of(doc, "SeverityName") == [s.label for s in Severity] + ["urgent"]
    assert enum_of(doc, "DeliveryState") == [s.value for s in DeliveryState]
    assert enum_of(doc, "Origin") == [o.value for o in Origin]
    assert enum_of(doc, "ConditionOp") == list(conditions.OPS)
    assert enum_of(doc, "Role") == ["producer", "admin"]
    limit = doc["components"]["parameters"]["Limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, params.MAX_LIMIT, 50)
    assert schemas["EnvelopeBatch"]["maxItems"] == config.ServerSettings().max_batch
    assert schemas["DeliveryIds"]["properties"]["ids"]["maxItems"] == admin.MAX_REPLAY_IDS
    # JSON Schema patterns are ECMA-262, where `$` is already the end of input; Python needs `\Z` for that
    assert schemas["EventName"]["pattern"] == routing.EVENT_NAME_RE.pattern.replace("\\Z", "$")
    assert schemas["EventName"]["maxLength"] == routing.MAX_EVENT_NAME
    assert schemas["EventPattern"]["pattern"] == routing.PATTERN_RE.pattern.replace("\\Z", "$")
    assert schemas["Name"]["pattern"] == config.NAME_PATTERN == CHANNEL_NAME_PATTERN
    envelope = schemas["Envelope"]["properties"]
    assert set(envelope) == ingest.ENVELOPE_FIELDS
    assert envelope["idempotency_key"]["maxLength"] == ingest.MAX_IDEMPOTENCY_KEY
    assert properties(doc, "Route") == set(config.RouteDecl.model_fields)
    assert properties(doc, "ChannelCommon") == set(ChannelConfig.model_fields)
    assert properties(doc, "ChannelCommon") | properties(doc, "WebhookChannel") == set(WebhookConfig.model_fields)
    assert properties(doc, "RouteView") == set(config.RouteDecl.model_fields) | {"managed"}
    assert properties(doc, "EscalationStep") == set(config.EscalateDecl.model_fields)
    other_types = schemas["OtherChannel"]["properties"]["type"]["enum"]
    assert sorted(["webhook", *other_types]) == sorted(REGISTRY), "channel types: update Channel/OtherChannel"
    assert properties(doc, "Check") == set(checks.CheckDecl.model_fields)
    assert enum_of(doc, "CheckState") == list(get_args(checks.State))
    assert enum_of(doc, "PingKind") == list(get_args(checks.PingKind))
    signal = doc["components"]["parameters"]["CheckSignal"]["schema"]["pattern"]
    assert all(re.match(signal, s) for s in [*checks_api.PING_KINDS, "0", "255"])


# ---- real answers and requests fit the schemas -------------------------------------------------------------

EVENT = Event("evt_01HZX8Q4T2N6V0M8K3J5R7W9YB", "pr.run.failed", Severity.ERROR, {"repo": "web"}, 1_700_000_000.5,
              "ci", "run-4411")
DELIVERIES = [
    Delivery(7, EVENT.id, "kosh", Severity.ERROR, DeliveryState.RETRYING, 2, 1_700_000_060.0, 1_700_000_000.5,
             last_error="HTTP 503: busy", updated_at=1_700_000_030.0),
    Delivery(8, EVENT.id, "kosh", Severity.ERROR, DeliveryState.DELIVERED, 1, 0.0, 1_700_000_100.0,
             origin=Origin.REPLAY, replay_of=7),
]
ATTEMPT = Attempt(7, 1, 1_700_000_001.0, 12.5, "failed", 503, "HTTP 503: busy")


def test_serialised_answers_fit_their_schemas(doc: dict[str, Any]) -> None:
    fresh = ingest.Accepted(EVENT.id, EVENT.name, EVENT.severity, 2, False)
    repeat = ingest.Accepted(EVENT.id, EVENT.name, EVENT.severity, 0, True)
    assert fits(doc, "Accepted", serialize.accepted(fresh))
    assert fits(doc, "Duplicate", serialize.accepted(repeat))
    assert not fits(doc, "Accepted", serialize.accepted(repeat))
    assert fits(doc, "AcceptedBatch", {"events": [serialize.accepted(fresh), serialize.accepted(repeat)]})
    assert fits(doc, "EventList", {"events": [serialize.event(EVENT, 2)], "next_cursor": EVENT.id})
    detail = serialize.event(EVENT, len(DELIVERIES))
    detail["deliveries"] = [{**serialize.delivery(d), "attempts_list": [serialize.attempt(ATTEMPT)]}
                            for d in DELIVERIES]
    assert fits(doc, "EventDetail", detail)
    assert not fits(doc, "EventDetail", serialize.event(EVENT, 2))
    listed = {"deliveries": [serialize.delivery(d, EVENT.name) for d in DELIVERIES], "next_cursor": "8"}
    assert fits(doc, "DeliveryList", listed)
    assert fits(doc, "Replayed", {"event_id": EVENT.id, "deliveries": [serialize.delivery(DELIVERIES[1])]})
    assert not fits(doc, "DeliveryList", {"deliveries": [serialize.delivery(DELIVERIES[0])], "next_cursor": None})
    route = config.RouteDecl.model_validate({
        "name": "pr", "match": "pr.*", "channels": ["kosh"], "suppress_for": "10m", "dedup_key": "{event}",
        "escalate": [{"after": "5m", "channels": ["pager"]}], "when": [{"field": "payload.x", "op": "exists"}]})
    assert fits(doc, "RouteView", {**route.model_dump(exclude_none=True), "managed": "api"})
    check = Check(checks.CheckDecl(name="backup.nightly", period=3600.0), checks.CheckState("up", 1_700_000_000.0),
                  "api")
    assert fits(doc, "CheckView", checks_api.check_view(check))


def test_requests_the_server_takes_fit_and_ones_it_refuses_do_not(doc: dict[str, Any]) -> None:
    assert fits(doc, "Envelope", {"event": "pr.run.failed", "payload": {"a": 1}, "severity": "urgent",
                                  "idempotency_key": "k"})
    assert not fits(doc, "Envelope", {"event": "pr.run.failed", "sevrity": "error"})
    assert not fits(doc, "Envelope", {"event": "PR.Failed"})
    assert not fits(doc, "EnvelopeBatch", [])
    webhook = {"name": "kosh", "type": "webhook", "url": "https://hooks.example.com/in", "signing": "standard",
               "secret": "env:KOSH_SECRET", "timeout": "2s", "headers": {"X-Team": "ops"},
               "template": {"title": "{{ event.name }}"}}
    assert fits(doc, "Channel", webhook)
    WebhookConfig.model_validate({**webhook, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})  # the code agrees
    assert not fits(doc, "Channel", {**webhook, "secret": None} | {"signing": "e11"})
    assert not fits(doc, "Channel", {k: v for k, v in webhook.items() if k != "secret"})
    assert not fits(doc, "Channel", {**webhook, "urll": "https://x.example.com"})
    assert not fits(doc, "Channel", {**webhook, "headers": {"Content-Type": "text/plain"}})
    route = {"name": "pr", "match": "pr.*", "channels": ["kosh"], "min_severity": "warning", "priority": 10,
             "when": [{"field": "payload.env", "op": "in", "value": ["prod"]}],
             "any": [[{"field": "severity", "op": "ge", "value": "error"}, {"field": "payload.x", "op": "exists"}]]}
    assert fits(doc, "Route", route)
    config.RouteDecl.model_validate(route).to_route()  # the code agrees
    assert not fits(doc, "Route", {**route, "when": [{"field": "payload.x", "op": "exists", "value": True}]})
    assert not fits(doc, "Route", {**route, "when": [{"field": "payload.x", "op": "eq"}]})
    assert not fits(doc, "Route", {**route, "any": [[]]})
    assert not fits(doc, "Route", {**route, "channels": []})
    assert fits(doc, "DlqRetry", {"ids": [1, 2]})
    assert fits(doc, "DlqRetry", {"filter": {"event": "pr.*", "since": "1h"}})
    assert not fits(doc, "DlqRetry", {"filter": {"state": "dead"}})
    assert not fits(doc, "DlqRetry", {})
    check = {"name": "backup.nightly", "cron": "0 3 * * *", "tz": "Europe/Berlin", "grace": "30m", "max_runtime": "2h"}
    assert fits(doc, "Check", check)
    checks.CheckDecl.model_validate(check)  # the code agrees
    assert not fits(doc, "Check", {**check, "period": "1h"})
    assert not fits(doc, "Check", {"name": "backup.nightly"})
    assert fits(doc, "Expectation", {"key": "deploy-42", "within": "30m", "group": "deploys"})
    assert not fits(doc, "Expectation", {"key": "deploy-42", "within": "30m", "deadline": "2030-01-01T00:00:00Z"})
    assert fits(doc, "KeyCreate", {"name": "ci", "role": "producer", "events": ["pr.*"]})
    assert not fits(doc, "KeyCreate", {"name": "ci", "role": "root"})


# ---- serving -----------------------------------------------------------------------------------------------

async def test_serve_returns_the_document_with_this_version(doc: dict[str, Any]) -> None:
    response = await openapi.serve(make_mocked_request("GET", OPENAPI_PATH))
    assert response.status == 200
    assert response.content_type == "application/json"
    assert isinstance(response.body, bytes)
    served = orjson.loads(response.body)
    assert served["info"]["version"] == alertd.__version__
    assert {**served, "info": doc["info"]} == {**doc, "info": doc["info"]}


async def test_serve_sets_the_running_version(monkeypatch: pytest.MonkeyPatch) -> None:
    openapi._body.cache_clear()
    monkeypatch.setattr(alertd, "__version__", "9.8.7")
    try:
        response = await openapi.serve(make_mocked_request("GET", OPENAPI_PATH))
        assert isinstance(response.body, bytes)
        assert orjson.loads(response.body)["info"]["version"] == "9.8.7"
    finally:
        openapi._body.cache_clear()


async def test_only_admin_keys_get_the_document() -> None:
    keys = {"admin-key": ApiKey("root", "admin", ("*",), "0" * 64),
            "producer-key": ApiKey("ci", "producer", ("*",), "1" * 64)}
    app = app_with_openapi(fake_runtime(live=SimpleNamespace(lookup_key=keys.get, throttle=lambda key, now: 0.0)))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for headers, status in (({}, 401), ({"x-api-key": "producer-key"}, 403),
                                ({"x-api-key": "admin-key"}, 200), ({"Authorization": "Bearer admin-key"}, 200)):
            response = await client.get(OPENAPI_PATH, headers=headers)
            assert response.status == status, headers
            body = await response.json()
            assert ("openapi" in body) if status == 200 else ("error" in body)
