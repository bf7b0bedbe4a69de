"""POST /v1/hooks/alertmanager and /v1/hooks/{name} through a real aiohttp server on 127.0.0.1, with a fake
runtime whose ingest records what it is given (the real Ingest.authorize decides 403s)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from alertd.adapters.hooks import HookDecl, compile_hooks
from alertd.api import hooks as hooks_api
from alertd.api.guard import guarded
from alertd.api.state import MAX_BODY, RUNTIME
from alertd.auth import ApiKey
from alertd.ingest import Accepted, Ingest
from alertd.model import Envelope, Severity
from alertd.store import StoreUnavailable

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager_v4.json"
MAX_BODY_BYTES = 65_536

KEYS = {
    "k-all": ApiKey("everything", "producer", ("*",), "0" * 64),
    "k-prom": ApiKey("prometheus", "producer", ("alertmanager.*",), "1" * 64),
    "k-grafana": ApiKey("grafana", "producer", ("grafana.*",), "2" * 64),
}

GRAFANA_HOOK = {"name": "grafana", "event": "/ruleName", "event_prefix": "grafana.", "severity": "/state",
                "severity_map": {"alerting": "critical", "ok": "info"}, "idempotency_key": "/fingerprint",
                "items": "/alerts"}


class RecordingIngest:
    """Stands in for Ingest: records accepted envelopes, treats a repeated idempotency key as a duplicate."""

    authorize = Ingest.authorize

    def __init__(self) -> None:
        self.accepted: list[tuple[Envelope, str]] = []
        self.keys: set[str] = set()
        self.fail = False

    async def accept(self, envelopes: list[Envelope], source: str) -> list[Accepted]:
        if self.fail:
            raise StoreUnavailable("disk full")
        results = []
        for envelope in envelopes:
            duplicate = envelope.idempotency_key is not None and envelope.idempotency_key in self.keys
            if envelope.idempotency_key is not None:
                self.keys.add(envelope.idempotency_key)
            if not duplicate:
                self.accepted.append((envelope, source))
            results.append(Accepted(f"evt_{len(self.accepted):026d}", envelope.event, envelope.severity, 1,
                                    duplicate))
        return results


def build_app(runtime: Any) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    app[MAX_BODY] = MAX_BODY_BYTES
    app.router.add_post("/v1/hooks/alertmanager", guarded(hooks_api.post_alertmanager))
    app.router.add_post("/v1/hooks/{name}", guarded(hooks_api.post_hook))
    return app


@pytest.fixture
def runtime() -> SimpleNamespace:
    catalog = {"grafana.disk_full": Severity.ERROR}
    snapshot = SimpleNamespace(default_severity=lambda name: catalog.get(name, Severity.INFO))
    return SimpleNamespace(config=SimpleNamespace(server=SimpleNamespace(max_batch=50)), accepting=True,
                           live=SimpleNamespace(snapshot=snapshot, lookup_key=KEYS.get, throttle=lambda key, now: 0.0),
                           ingest=RecordingIngest(),
                           hooks=compile_hooks([HookDecl.model_validate(GRAFANA_HOOK)]))


@pytest.fixture
async def client(runtime):
    async with TestClient(TestServer(build_app(runtime), host="127.0.0.1")) as test_client:
        yield test_client


async def post(client: TestClient, path: str, body: Any, key: str | None = "k-all") -> tuple[int, Any, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    response = await client.post(path, data=data, headers=headers)
    assert response.headers["content-type"].startswith("application/json")
    return response.status, await response.json(), response.headers


def assert_error(status: int, body: Any, expected_status: int, code: str, field: str | None = None) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    if field is not None:
        assert body["error"].get("field") == field, body


async def test_alertmanager_payload_is_accepted_as_events(client, runtime):
    status, body, _ = await post(client, "/v1/hooks/alertmanager", json.loads(FIXTURE.read_text()), key="k-prom")

    assert status == 202
    assert [(e["event"], e["severity"], e["duplicate"]) for e in body["events"]] == [
        ("alertmanager.instancedown", "critical", False),
        ("alertmanager.instancedown", "info", False),
        ("alertmanager.nodecpuhigh", "warning", False),
    ]
    assert all(e["id"].startswith("evt_") and e["deliveries"] == 1 for e in body["events"])
    assert [source for _, source in runtime.ingest.accepted] == ["prometheus"] * 3
    assert runtime.ingest.accepted[0][0].payload["summary"].startswith("db-1:9100 has been down")


async def test_a_resent_alertmanager_group_is_200_and_all_duplicates(client, runtime):
    payload = json.loads(FIXTURE.read_text())
    assert (await post(client, "/v1/hooks/alertmanager", payload))[0] == 202
    status, body, _ = await post(client, "/v1/hooks/alertmanager", payload)
    assert status == 200
    assert all(e["duplicate"] is True and e["skipped"] is True for e in body["events"])
    assert len(runtime.ingest.accepted) == 3


async def test_alertmanager_errors(client, runtime):
    status, body, _ = await post(client, "/v1/hooks/alertmanager", {"version": "3", "alerts": []})
    assert_error(status, body, 400, "invalid_event", "version")
    status, body, _ = await post(client, "/v1/hooks/alertmanager",
                                 {"version": "4", "alerts": [{"labels": {}}, {"labels": "x"}]})
    assert_error(status, body, 400, "invalid_event", "alerts[1].labels")
    many = {"version": "4", "alerts": [{"labels": {"alertname": "A"}}] * 51}
    status, body, _ = await post(client, "/v1/hooks/alertmanager", many)
    assert_error(status, body, 413, "too_large", "alerts")
    status, body, _ = await post(client, "/v1/hooks/alertmanager", b"{not json")
    assert_error(status, body, 400, "invalid_json", "body")
    status, body, _ = await post(client, "/v1/hooks/alertmanager", b"   ")
    assert_error(status, body, 400, "invalid_json", "body")
    assert runtime.ingest.accepted == []


async def test_a_key_outside_its_patterns_is_403(client, runtime):
    status, body, _ = await post(client, "/v1/hooks/alertmanager", json.loads(FIXTURE.read_text()), key="k-grafana")
    assert_error(status, body, 403, "forbidden", "[0].event")
    assert "alertmanager.instancedown" in body["error"]["message"]

    grafana_body = {"alerts": [{"ruleName": "CPU", "state": "alerting"}]}
    status, body, _ = await post(client, "/v1/hooks/grafana", grafana_body, key="k-prom")
    assert_error(status, body, 403, "forbidden", "event")
    assert runtime.ingest.accepted == []


async def test_a_declared_hook_maps_and_accepts(client, runtime):
    body = {"alerts": [{"ruleName": "High memory", "state": "Alerting", "fingerprint": "c6ea"},
                       {"ruleName": "High memory", "state": "ok", "fingerprint": "c6eb"}]}
    status, answer, _ = await post(client, "/v1/hooks/grafana", body, key="k-grafana")

    assert status == 202
    assert [(e["event"], e["severity"]) for e in answer["events"]] == [
        ("grafana.high_memory", "critical"), ("grafana.high_memory", "info")]
    assert [(e.idempotency_key, source) for e, source in runtime.ingest.accepted] == [
        ("hook:grafana:c6ea", "grafana"), ("hook:grafana:c6eb", "grafana")]
    status, answer, _ = await post(client, "/v1/hooks/grafana", body, key="k-grafana")
    assert status == 200 and [e["duplicate"] for e in answer["events"]] == [True, True]


async def test_without_a_severity_the_event_catalog_default_applies(client):
    body = {"alerts": [{"ruleName": "Disk full"}, {"ruleName": "Other"}, {"ruleName": "Disk full", "state": "ok"}]}
    status, answer, _ = await post(client, "/v1/hooks/grafana", body, key="k-grafana")
    assert status == 202
    assert [(e["event"], e["severity"]) for e in answer["events"]] == [
        ("grafana.disk_full", "error"), ("grafana.other", "info"), ("grafana.disk_full", "info")]


async def test_hook_errors(client, runtime):
    status, body, _ = await post(client, "/v1/hooks/nope", {"a": 1})
    assert_error(status, body, 404, "not_found")
    assert "nope" in body["error"]["message"]
    status, body, _ = await post(client, "/v1/hooks/grafana", b'{"alerts": [')
    assert_error(status, body, 400, "invalid_json", "body")
    status, body, _ = await post(client, "/v1/hooks/grafana", {"alerts": [{"state": "ok"}]})
    assert_error(status, body, 400, "invalid_event", "items[0].event")
    status, body, _ = await post(client, "/v1/hooks/grafana", {"alerts": [{"ruleName": "x"}] * 51})
    assert_error(status, body, 413, "too_large", "items")
    status, body, _ = await post(client, "/v1/hooks/grafana", {"alerts": "x" * (MAX_BODY_BYTES + 10)})
    assert_error(status, body, 413, "too_large")
    status, body, _ = await post(client, "/v1/hooks/grafana", {"alerts": []}, key=None)
    assert_error(status, body, 401, "unauthorized")
    assert runtime.ingest.accepted == []



@pytest.mark.parametrize(("path", "body"), [
    ("/v1/hooks/alertmanager", json.loads(FIXTURE.read_text())),
    ("/v1/hooks/grafana", {"alerts": [{"ruleName": "x"}]}),
])
async def test_store_unavailable_is_503_with_retry_after(client, runtime, path, body):
    runtime.ingest.fail = True
    status, answer, headers = await post(client, path, body)
    assert_error(status, answer, 503, "store_unavailable")
    assert headers["Retry-After"] == "5"


@pytest.mark.parametrize("path", ["/v1/hooks/alertmanager", "/v1/hooks/grafana"])
async def test_shutting_down_is_503(client, runtime, path):
    runtime.accepting = False
    status, answer, headers = await post(client, path, {"alerts": []})
    assert_error(status, answer, 503, "shutting_down")
    assert headers["Retry-After"] == "5"
