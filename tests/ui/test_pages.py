"""The UI through the in-process daemon: sign-in, every page with and without data, CSRF, replay, XSS."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp import web

from alertd.model import new_event_id
from alertd.silences import SilenceBook
from alertd.ui.web import Ui
from tests.api.conftest import ADMIN, PRODUCER
from tests.ui.conftest import (
    CONDITIONAL_ROUTE,
    UiClient,
    dead_event,
    deliveries_of,
    ensure_ack_path,
    incident_state,
    open_incident,
    post_event,
    settle,
)

SIGNIN_COOKIE_RE = re.compile(r"alertd_signin=[A-Za-z0-9_-]{20,100};")
PAGES = ["/ui", "/ui/events", "/ui/dlq", "/ui/channels", "/ui/routes", "/ui/checks", "/ui/silences",
         "/ui/incidents"]
XSS = "<script>alert(1)</script>"


def set_cookie_header(response: Any, name: str) -> str:
    return next(v for v in response.headers.getall("Set-Cookie") if v.startswith(name + "="))


# ---- signing in ---------------------------------------------------------------------------------

async def test_signing_in_with_an_admin_key_sets_a_strict_http_only_session_cookie(client: UiClient):
    status, _, response = await client.sign_in(ADMIN)
    assert status == 303 and response.headers["Location"] == "/ui"
    cookie = set_cookie_header(response, "alertd_session")
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) == 43  # 32 random bytes, base64url
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/ui", "samesite=strict"} <= flags
    assert "secure" not in flags  # public_url is http here
    status, text, _ = await client.get("/ui")
    assert status == 200 and "Overview" in text and ADMIN not in text


def test_the_cookie_is_secure_when_the_public_url_is_https():
    runtime: Any = SimpleNamespace(config=SimpleNamespace(server=SimpleNamespace(public_url="https://alerts.example")))
    ui = Ui(runtime)
    response = web.Response()
    ui.set_cookie(response, "alertd_session", "x")
    assert response.cookies["alertd_session"]["secure"] is True
    assert response.cookies["alertd_session"]["samesite"] == "Strict"


@pytest.mark.parametrize(("key", "status", "message"), [
    (PRODUCER, 403, "not an admin key"),
    ("alertd_nope_nope_nope", 401, "Unknown or revoked key"),
    ("", 401, "Unknown or revoked key"),
])
async def test_a_producer_or_unknown_key_is_refused(client: UiClient, key, status, message):
    answer, text, response = await client.sign_in(key)
    assert answer == status and message in text
    assert not any(v.startswith("alertd_session=") for v in response.headers.getall("Set-Cookie", []))
    status, _, response = await client.get("/ui/events", follow=False)
    assert status == 303 and response.headers["Location"] == "/ui/login?next=/ui/events"


async def test_sign_in_needs_the_form_token_from_the_sign_in_page(client: UiClient):
    status, text, _ = await client.post("/ui/login", {"key": ADMIN}, csrf=False, follow=False)
    assert status == 403 and "expired" in text


async def test_failed_sign_ins_are_throttled_per_address(client: UiClient):
    for _ in range(5):
        assert (await client.sign_in("alertd_wrong_guess"))[0] == 401
    status, text, response = await client.sign_in(ADMIN)  # even the right key waits now
    assert status == 429 and "Too many failed sign-ins" in text
    assert 0 < int(response.headers["Retry-After"]) <= 60


async def test_after_sign_in_the_page_asked_for_is_shown(client: UiClient):
    _, _, response = await client.get("/ui/dlq?channel=hook", follow=False)
    assert response.headers["Location"] == "/ui/login?next=/ui/dlq%3Fchannel%3Dhook"
    _, text, _ = await client.get(response.headers["Location"])
    assert 'name="next" value="/ui/dlq?channel=hook"' in text


async def test_signing_out_ends_the_session(admin: UiClient):
    status, _, response = await admin.post("/ui/logout", follow=False)
    assert status == 303 and response.headers["Location"] == "/ui/login"
    status, _, _ = await admin.get("/ui", follow=False)
    assert status == 303


async def test_a_revoked_key_ends_its_sessions_at_once(hub, client: UiClient):
    status, created = await hub.call("POST", "/v1/admin/keys", {"name": "oncall", "role": "admin"})
    assert status == 201
    assert (await client.sign_in(created["key"]))[0] == 303
    assert (await client.get("/ui", follow=False))[0] == 200
    status, _ = await hub.call("DELETE", "/v1/admin/keys/oncall", headers={"X-Confirm-Destructive": "true"})
    assert status == 200
    assert (await client.get("/ui", follow=False))[0] == 303


# ---- pages --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES)
async def test_every_page_answers_with_no_data(admin: UiClient, path):
    status, text, response = await admin.get(path)
    assert status == 200, text
    assert response.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert 'aria-current="page"' in text and "Sign out" in text
    assert "<script>" not in text and " on" + "click=" not in text


async def test_every_page_answers_with_data(hub, admin: UiClient):
    dead = await dead_event(hub)
    hub.receiver_status["code"] = 200
    ok = await post_event(hub, "pr.merged", {"repo": "api"}, severity="warning")
    await settle(hub, ok, "delivered")
    await hub.call("POST", "/v1/admin/checks", {"name": "nightly.backup", "period": "1h"})
    await open_incident(hub, dead)
    expected = {"/ui": ["1 dead", dead], "/ui/events": ["pr.run.failed", "pr.merged"],
                "/ui/dlq": ["HTTP 400", "Retry all 1 shown"], "/ui/channels": ["hook", "webhook", "HTTP 400"],
                "/ui/routes": ["pr.*", "hook"], "/ui/checks": ["nightly.backup", "Pause"],
                "/ui/silences": ["Silences"], "/ui/incidents": ["pr.run.failed", "Incident"],
                f"/ui/events/{dead}": ["HTTP 400", "Replay to current routes", "&#34;repo&#34;: &#34;web&#34;"]}
    for path, fragments in expected.items():
        status, text, _ = await admin.get(path)
        assert status == 200, (path, text)
        for fragment in fragments:
            assert fragment in text, (path, fragment)


async def test_the_channel_page_counts_outcomes_and_masks_secrets(hub, admin: UiClient):
    await dead_event(hub)
    _, text, _ = await admin.get("/ui/channels")
    assert "0.0%" in text and "1 settled" in text
    assert "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in text and "whsec_****" in text


async def test_unknown_things_are_pages_not_errors(admin: UiClient):
    status, text, response = await admin.get("/ui/events/evt_nope")
    assert status == 404 and "No such event" in text
    status, text, response = await admin.get("/ui/no/such/page")
    assert status == 404 and "Not found" in text and response.content_type == "text/html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_failure_inside_a_page_is_an_html_error_page(admin: UiClient, monkeypatch):
    from alertd.ui import queries

    async def broken(reader):
        raise RuntimeError("boom")

    monkeypatch.setattr(queries, "open_incident_count", broken)
    status, text, response = await admin.get("/ui")
    assert status == 500 and "Something went wrong" in text and "boom" not in text
    assert response.content_type == "text/html"


async def test_static_files_are_served_locally_with_their_types(admin: UiClient):
    _, text, _ = await admin.get("/ui")
    for name, kind in (("ui.css", "text/css"), ("ui.js", "text/javascript")):
        assert f"/ui/static/{name}?v=" in text
        status, _, response = await admin.get(f"/ui/static/{name}")
        assert status == 200 and response.content_type == kind
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert (await admin.get("/ui/static/..%2Fweb.py"))[0] == 404
    assert "http://" not in text.replace(admin.hub.base, "") and "https://" not in text


# ---- events -------------------------------------------------------------------------------------

async def test_events_filter_by_delivery_state_severity_and_name(hub, admin: UiClient):
    dead = await dead_event(hub)
    hub.receiver_status["code"] = 200
    ok = await post_event(hub, "pr.merged", severity="info")
    await settle(hub, ok, "delivered")
    _, text, _ = await admin.get("/ui/events?state=dead")
    assert dead in text and ok not in text
    _, text, _ = await admin.get("/ui/events?severity=info&state=")
    assert ok in text and dead not in text
    _, text, _ = await admin.get("/ui/events?event=pr.merged&since=1h")
    assert ok in text and dead not in text
    _, text, _ = await admin.get("/ui/events?event=deploy.*")
    assert "No event matches these filters" in text


async def test_a_bad_filter_says_what_is_wrong(admin: UiClient):
    status, text, _ = await admin.get("/ui/events?severity=loud")
    assert status == 400 and "unknown severity" in text
    status, text, _ = await admin.get("/ui/events?since=yesterday-ish")
    assert status == 400 and "invalid time" in text


async def test_events_are_paged_with_the_cursor(hub, admin: UiClient):
    status, _ = await hub.call("POST", "/v1/events", [{"event": "deploy.done", "payload": {"n": i}}
                                                    for i in range(53)], key=PRODUCER)
    assert status == 202
    _, first, _ = await admin.get("/ui/events")
    assert first.count('href="/ui/events/evt_') == 50 and 'rel="next"' in first
    next_url = first[first.index('/ui/events?cursor='):].split('"')[0].replace("&amp;", "&")
    _, second, _ = await admin.get(next_url)
    assert second.count('href="/ui/events/evt_') == 3 and 'rel="next"' not in second


async def test_replay_through_the_ui_creates_a_delivery(hub, admin: UiClient):
    event_id = await dead_event(hub)
    hub.receiver_status["code"] = 200
    status, text, _ = await admin.post(f"/ui/events/{event_id}/replay")
    assert status == 200 and "Replayed to hook" in text
    found = await settle(hub, event_id, "delivered")
    replayed = [d for d in found if d["origin"] == "replay"]
    assert len(replayed) == 1 and replayed[0]["replay_of"] == found[0]["id"]


# ---- CSRF ---------------------------------------------------------------------------------------

async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(hub, admin: UiClient):
    event_id = await dead_event(hub)
    dead_id = (await deliveries_of(hub, event_id))[0]["id"]
    await hub.call("POST", "/v1/admin/checks", {"name": "nightly.backup", "period": "1h"})
    for path, data in [(f"/ui/events/{event_id}/replay", {}), ("/ui/dlq/retry", {"ids": str(dead_id)}),
                       ("/ui/checks/nightly.backup/pause", {}), ("/ui/logout", {})]:
        status, text, response = await admin.post(path, data, csrf=False)
        assert status == 403 and "Form refused" in text, path
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        status, text, _ = await admin.post(path, [*data.items(), ("csrf", "forged-" + "x" * 40)], csrf=False)
        assert status == 403, path
    deliveries = await deliveries_of(hub, event_id)
    assert [d["state"] for d in deliveries] == ["dead"]
    _, check = await hub.call("GET", "/v1/admin/checks/nightly.backup")
    assert check["state"] != "paused"
    assert (await admin.get("/ui", follow=False))[0] == 200  # still signed in


async def test_a_post_without_a_session_is_refused(hub, client: UiClient):
    event_id = await dead_event(hub)
    status, text, _ = await client.post(f"/ui/events/{event_id}/replay", csrf=False)
    assert status == 403 and "session has ended" in text
    assert len(await deliveries_of(hub, event_id)) == 1


# ---- XSS ----------------------------------------------------------------------------------------

async def seed_hostile_event(hub) -> str:
    """A stored event whose name, payload, source and error strings all carry markup (a name that
    ingest would refuse, written straight to the store as an old or foreign row might be)."""
    runtime = hub.daemon.runtime
    now = time.time()
    event_id = new_event_id(now)

    def seed(conn: Any) -> None:
        conn.execute("INSERT INTO events VALUES (?, ?, 2, ?, ?, ?, ?, 1)",
                     (event_id, XSS, orjson.dumps({"note": XSS, XSS: [XSS]}).decode(), now, XSS, XSS))
        delivery_id = runtime.store.ids.take(1)
        conn.execute("INSERT INTO deliveries (id, event_id, channel, severity, state, attempts, next_attempt_at, "
                     "created_at, updated_at, origin, last_error, reason) VALUES (?, ?, 'hook', 2, 'dead', 1, ?, ?, "
                     "?, 'route', ?, ?)", (delivery_id, event_id, now, now, now, f"HTTP 400: {XSS}", XSS))
        conn.execute("INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, http_status, "
                     "error) VALUES (?, 1, ?, 3.0, 'failed', 400, ?)", (delivery_id, now, f"HTTP 400: {XSS}"))
        conn.execute("INSERT INTO incidents (event_id, route, state, opened_at, step) VALUES (?, ?, 'open', ?, 0)",
                     (event_id, XSS, now))

    await runtime.store.writer.submit(seed)
    return event_id


async def test_producer_strings_are_escaped_everywhere(hub, admin: UiClient):
    event_id = await seed_hostile_event(hub)
    for path in ["/ui", "/ui/events", f"/ui/events/{event_id}", "/ui/dlq", "/ui/channels", "/ui/incidents",
                 "/ui/events?state=dead"]:
        status, text, _ = await admin.get(path)
        assert status == 200, path
        assert XSS not in text and "<script>" not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path


async def test_the_route_explainer_escapes_what_it_is_given(admin: UiClient):
    status, text, _ = await admin.post("/ui/routes", {"event": "pr.run.failed", "severity": "",
                                                      "payload": orjson.dumps({"x": XSS}).decode()})
    assert status == 200 and XSS not in text and "&lt;script&gt;" in text
    status, text, _ = await admin.post("/ui/routes", {"event": XSS, "payload": "{}"})
    assert status == 400 and XSS not in text and "lowercase dotted words" in text


# ---- routes, channels, checks, dead letters, silences, incidents --------------------------------

async def test_the_route_explainer_says_which_routes_match_and_why_not(admin: UiClient):
    _, text, _ = await admin.post("/ui/routes", {"event": "pr.run.failed", "severity": "", "payload": "{}"})
    assert "As <strong>error</strong>, it would reach:\n    <strong>hook</strong>" in text  # the catalog's default
    _, text, _ = await admin.post("/ui/routes", {"event": "deploy.done", "severity": "info", "payload": "{}"})
    assert "no channel" in text and "does not match" in text
    status, text, _ = await admin.post("/ui/routes", {"event": "pr.x", "payload": "{not json"})
    assert status == 400 and "not valid JSON" in text


async def test_routes_are_listed_in_order_with_their_conditions_in_words(hub, admin: UiClient):
    status, _ = await hub.call("POST", "/v1/admin/routes", CONDITIONAL_ROUTE)
    assert status == 201
    _, text, _ = await admin.get("/ui/routes")
    assert text.index("prod-deploys") < text.index("<h2>pr <")  # priority 10 before 100
    assert "payload.env is one of [&#34;prod&#34;,&#34;staging&#34;]" in text
    assert "<code>payload.attempts ≥ 3</code> and <code>payload.trace exists</code>" in text
    _, text, _ = await admin.post("/ui/routes", {"event": "deploy.done", "severity": "error",
                                                 "payload": '{"env": "dev", "plan": "enterprise"}'})
    assert "when[0]" in text and "no channel" in text


async def test_a_channel_test_reports_the_outcome(hub, admin: UiClient):
    _, text, _ = await admin.post("/ui/channels/hook/test")
    assert "Test message to hook: sent (HTTP 200" in text
    hub.receiver_status["code"] = 500
    _, text, _ = await admin.post("/ui/channels/hook/test")
    assert "Test message to hook failed: HTTP 500" in text and "a retry could succeed" in text
    _, text, _ = await admin.post("/ui/channels/nope/test")
    assert "no channel named" in text


async def test_checks_pause_and_resume(hub, admin: UiClient):
    await hub.call("POST", "/v1/admin/checks", {"name": "nightly.backup", "period": "1h"})
    _, text, _ = await admin.post("/ui/checks/nightly.backup/pause")
    assert "is paused now" in text and "Resume" in text
    _, check = await hub.call("GET", "/v1/admin/checks/nightly.backup")
    assert check["state"] == "paused"
    _, text, _ = await admin.post("/ui/checks/nightly.backup/resume")
    _, check = await hub.call("GET", "/v1/admin/checks/nightly.backup")
    assert check["state"] != "paused"
    _, text, _ = await admin.post("/ui/checks/nope/pause")
    assert "no check named" in text


async def test_dead_letters_are_retried_one_or_all_shown(hub, admin: UiClient):
    first, second = await dead_event(hub), await dead_event(hub)
    ids = [(await deliveries_of(hub, e))[0]["id"] for e in (first, second)]
    hub.receiver_status["code"] = 200
    _, text, _ = await admin.post("/ui/dlq/retry", {"ids": str(ids[0]), "back": "/ui/dlq"})
    assert "Retrying 1 dead delivery" in text
    await settle(hub, first, "delivered")
    _, text, _ = await admin.post("/ui/dlq/retry", [("ids", str(ids[0])), ("ids", str(ids[1]))])
    assert "Retrying 1 dead delivery" in text  # the first is no longer dead
    await settle(hub, second, "delivered")
    _, text, _ = await admin.post("/ui/dlq/retry", {"ids": "x"})
    assert "Choose 1 to 500" in text


async def test_silences_say_so_when_the_feature_is_off(hub, admin: UiClient):
    hub.daemon.runtime.silences = None  # as in a build without silences
    _, text, _ = await admin.get("/ui/silences")
    assert "Silences are not available yet" in text and "New silence" not in text
    _, text, _ = await admin.post("/ui/silences", {"event": "pr.*", "duration": "1h", "comment": "x"})
    assert "not available" in text


async def test_silences_are_created_and_expired(hub, admin: UiClient):
    runtime = hub.daemon.runtime
    if getattr(runtime, "silences", None) is None:
        runtime.silences = SilenceBook()  # a build whose daemon does not hold one yet
    _, text, _ = await admin.post("/ui/silences", {"event": "pr.*", "duration": "2h", "comment": f"deploy {XSS}"})
    assert "is in force" in text and "deploy &lt;script&gt;" in text and XSS not in text
    assert len(runtime.silences.current()) == 1
    silence_id = runtime.silences.current().silences[0].id
    status, text, _ = await admin.post("/ui/silences", {"event": "pr.*", "duration": "forever", "comment": "x"})
    assert status == 400 and "invalid duration" in text
    _, text, _ = await admin.post(f"/ui/silences/{silence_id}/expire")
    assert f"Silence {silence_id} expired" in text and len(runtime.silences.current()) == 0


async def test_an_open_incident_is_acknowledged(hub, admin: UiClient):
    event_id = await post_event(hub)
    incident_id = await open_incident(hub, event_id)
    ensure_ack_path(hub)
    _, text, _ = await admin.get("/ui/incidents")
    assert f'action="/ui/incidents/{incident_id}/ack"' in text
    _, text, _ = await admin.post(f"/ui/incidents/{incident_id}/ack")
    assert f"Incident {incident_id} acknowledged" in text and "No open incidents" in text
    assert await incident_state(hub, incident_id) == ("acked", "ui:admin")
    _, text, _ = await admin.post(f"/ui/incidents/{incident_id}/ack")
    assert "not acknowledged" in text


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data", b"abc"),  # no boundary
    ("multipart/form-data; boundary=xx", b"--xx\r\ngarbage"),
    ("application/x-www-form-urlencoded; charset=bogus", b"key=x"),
])
async def test_a_form_that_cannot_be_read_is_a_400_page_not_a_500(client, content_type, body):
    # signed out (the sign-in form) and signed in (any other form): aiohttp raised, the guard answered 500
    # and logged a traceback for each, with no sign-in needed
    async with client.session.post(client.hub.base + "/ui/login", data=body,
                                   headers={"Content-Type": content_type}) as response:
        assert response.status == 400 and "could not be read" in await response.text()
    await client.sign_in()
    async with client.session.post(client.hub.base + "/ui/logout", data=body,
                                   headers={"Content-Type": content_type}) as response:
        assert response.status == 400 and "Form refused" in await response.text()
        assert response.headers["Content-Security-Policy"]


async def test_a_sign_in_cookie_that_is_not_a_token_is_replaced_not_echoed(client):
    for hostile in ("\xff" * 21, "é" * 30, "a" * 19 + '"; x'):
        client.session.cookie_jar.clear()
        async with client.session.get(client.hub.base + "/ui/login",
                                      headers={"Cookie": f"alertd_signin={hostile}".encode().decode("latin-1")}
                                      ) as response:
            assert response.status == 200
            assert hostile not in await response.text()
            assert SIGNIN_COOKIE_RE.search(response.headers["Set-Cookie"])


async def test_any_url_in_a_channels_view_has_no_credentials(hub):
    status, _ = await hub.call("POST", "/v1/admin/channels", {
        "name": "pd", "type": "pagerduty", "routing_key": "R0123456789abcdef0123456789abcdef",
        "api_base": "https://pduser:pdpassword123@events.example.com/v2?key=APIBASESECRET"})
    assert status == 201
    _, shown = await hub.call("GET", "/v1/admin/channels/pd")
    assert "pdpassword123" not in str(shown) and "APIBASESECRET" not in str(shown)
    assert shown["config"]["api_base"].startswith("https://events.example.com/v2")
