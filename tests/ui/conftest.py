"""UI tests: the daemon in-process (tests/api's `hub`), with the UI wired in, and a cookie-keeping client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import alertd.daemon
from alertd import ui
from tests.api import conftest as api_conftest
from tests.api.conftest import ADMIN, Hub

hub = api_conftest.hub  # the in-process daemon fixture, shared with tests/api

CONDITIONAL_ROUTE = {
    "name": "prod-deploys", "match": "deploy.*", "min_severity": "warning", "channels": ["hook"], "priority": 10,
    "when": [{"field": "payload.env", "op": "in", "value": ["prod", "staging"]}],
    "any": [[{"field": "payload.plan", "op": "eq", "value": "enterprise"}],
            [{"field": "payload.attempts", "op": "ge", "value": 3}, {"field": "payload.trace", "op": "exists"}]],
}
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
SIGNIN_RE = re.compile(r'name="signin_token" value="([^"]+)"')


def pytest_configure(config: pytest.Config) -> None:
    # also belongs in pyproject's [tool.pytest.ini_options] markers; registered here so --strict-markers passes
    config.addinivalue_line("markers", "browser: drives a real headless Chromium (skipped without one)")


@pytest.fixture(autouse=True)
def _ui_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until api/app.py calls alertd.ui.setup itself (setup is idempotent, so this stays harmless after)."""
    build = alertd.daemon.build_app

    def build_with_ui(runtime: Any) -> Any:
        app = build(runtime)
        ui.setup(app, runtime)
        return app

    monkeypatch.setattr(alertd.daemon, "build_app", build_with_ui)


class UiClient:
    """A browser stand-in: keeps cookies, reads CSRF tokens off the pages, never follows redirects silently."""

    def __init__(self, hub: Hub, session: aiohttp.ClientSession) -> None:
        self.hub = hub
        self.session = session
        self.csrf = ""

    async def get(self, path: str, *, follow: bool = True) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.hub.base + path, allow_redirects=follow) as response:
            text = await response.text()
        found = CSRF_RE.search(text)
        if found:
            self.csrf = found.group(1)
        return response.status, text, response

    async def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]] | None = None, *,
                   csrf: bool = True, follow: bool = True) -> tuple[int, str, aiohttp.ClientResponse]:
        fields = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            fields.append(("csrf", self.csrf))
        async with self.session.post(self.hub.base + path, data=fields, allow_redirects=follow) as response:
            text = await response.text()
        found = CSRF_RE.search(text)
        if found:
            self.csrf = found.group(1)
        return response.status, text, response

    async def sign_in(self, key: str = ADMIN) -> tuple[int, str, aiohttp.ClientResponse]:
        _, text, _ = await self.get("/ui/login")
        token = SIGNIN_RE.search(text)
        assert token, text
        return await self.post("/ui/login", {"key": key, "signin_token": token.group(1), "next": "/ui"},
                               csrf=False, follow=False)


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[UiClient]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield UiClient(hub, session)


@pytest.fixture
async def admin(client: UiClient) -> UiClient:
    status, _, _ = await client.sign_in()
    assert status == 303, status
    await client.get("/ui")
    return client


# ---- seeding ------------------------------------------------------------------------------------

async def post_event(hub: Hub, event: str = "pr.run.failed", payload: dict[str, Any] | None = None,
                     severity: str | None = None) -> str:
    from tests.api.conftest import PRODUCER
    body: dict[str, Any] = {"event": event, "payload": payload or {"repo": "web"}}
    if severity:
        body["severity"] = severity
    status, answer = await hub.call("POST", "/v1/events", body, key=PRODUCER)
    assert status == 202, answer
    return str(answer["id"])


async def deliveries_of(hub: Hub, event_id: str) -> list[dict[str, Any]]:
    status, body = await hub.call("GET", f"/v1/admin/events/{event_id}")
    assert status == 200, body
    return list(body["deliveries"])


async def settle(hub: Hub, event_id: str, state: str, count: int = 1) -> list[dict[str, Any]]:
    """Waits until `count` deliveries of the event are in `state`."""
    found: list[dict[str, Any]] = []

    async def reached() -> bool:
        nonlocal found
        found = await deliveries_of(hub, event_id)
        return sum(d["state"] == state for d in found) >= count

    await hub.until(reached)
    return found


async def dead_event(hub: Hub, **kwargs: Any) -> str:
    """An event whose one delivery died: the receiver answers 400 (a permanent failure)."""
    hub.receiver_status["code"] = 400  # type: ignore[attr-defined]
    event_id = await post_event(hub, **kwargs)
    await settle(hub, event_id, "dead")
    return event_id


async def open_incident(hub: Hub, event_id: str, route: str = "pr") -> int:
    import time
    now = time.time()

    def insert(conn: Any) -> int:
        cursor = conn.execute("INSERT INTO incidents (event_id, route, state, opened_at, step, next_step_at) "
                              "VALUES (?, ?, 'open', ?, 0, ?)", (event_id, route, now, now + 300))
        return int(cursor.lastrowid)

    assert hub.daemon.runtime is not None
    return int(await hub.daemon.runtime.store.writer.submit(insert))


def ensure_ack_path(hub: Hub) -> None:
    """Uses the build's ack path (runtime.incidents.ack, or scheduler.ack_incident) when it has one; else
    stands one in on the store's own ack op."""
    import time

    runtime = hub.daemon.runtime
    assert runtime is not None
    if getattr(getattr(runtime, "incidents", None), "ack", None) or getattr(runtime.scheduler, "ack_incident", None):
        return
    try:
        from alertd.store import incident_ops
    except ImportError:
        pytest.skip("no incident ack path in this build (neither scheduler.ack_incident nor store.incident_ops)")

    async def ack_incident(incident_id: int, actor: str) -> Any:
        return await runtime.store.writer.submit(
            lambda c: incident_ops.ack(c, incident_id, actor, None, time.time()))

    runtime.scheduler.ack_incident = ack_incident  # type: ignore[attr-defined]


async def incident_state(hub: Hub, incident_id: int) -> tuple[str, str | None]:
    runtime = hub.daemon.runtime
    assert runtime is not None
    async with runtime.store.read.conn.execute("SELECT state, acked_by FROM incidents WHERE id = ?",
                                               (incident_id,)) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return row[0], row[1]
