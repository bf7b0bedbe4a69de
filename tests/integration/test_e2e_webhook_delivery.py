"""Producer → daemon → webhook receiver: signatures, body shape, retries and dead letters."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.conftest import E11_SECRET, PRODUCER_KEY, STANDARD_SECRET, Reply, raw_http, route, webhook

pytestmark = pytest.mark.e2e

BODY_KEYS = {"id", "event", "severity", "payload", "created_at"}


def curl_post(port: int, body: bytes, auth_header: str) -> bytes:
    """The bytes `curl -H '<auth>' -H 'content-type: application/json' -d @body URL` writes."""
    return (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
            f"{auth_header}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def test_curl_shaped_events_arrive_signed_and_verifiable_with_both_schemes(start_daemon, receiver):
    receiver.script("/standard", 500, 200)
    receiver.script("/e11", 200)
    daemon = await start_daemon(
        channels=[webhook("std", receiver.url("/standard"), signing="standard", secret=STANDARD_SECRET),
                  webhook("e11", receiver.url("/e11"), signing="e11", secret=E11_SECRET)],
        routes=[route("deploys", "deploy.*", ["std"]), route("builds", "build.*", ["e11"])])

    body = b'{"event": "deploy.finished", "severity": "warning", "payload": {"service": "api", "version": "1.2.3"}}'
    status, headers, answer = await raw_http(daemon.port, curl_post(daemon.port, body, f"x-api-key: {PRODUCER_KEY}"))
    assert status == 202, answer
    assert headers["content-type"].startswith("application/json")
    accepted = json.loads(answer)
    assert accepted == {"id": accepted["id"], "event": "deploy.finished", "severity": "warning", "deliveries": 1,
                        "duplicate": False}
    assert accepted["id"].startswith("evt_")

    body2 = b'{"event": "build.done", "payload": {"commit": "abc123"}}'
    status, _, answer = await raw_http(daemon.port,
                                       curl_post(daemon.port, body2, f"Authorization: Bearer {PRODUCER_KEY}"))
    assert status == 202, answer
    accepted2 = json.loads(answer)
    assert accepted2["severity"] == "info" and accepted2["deliveries"] == 1

    # Standard Webhooks: the 500 is retried; both attempts carry the same webhook-id and verify.
    first, second = await receiver.wait_count(2, "/standard")
    stored = (await daemon.wait_settled(accepted["id"], 1))
    assert stored["deliveries"][0]["state"] == "delivered"
    for request in (first, second):
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        assert Webhook(STANDARD_SECRET).verify(request.body, request.headers) == request.json()
        assert request.headers["webhook-signature"].startswith("v1,")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body  # the exact same bytes are signed and sent on a retry
    delivered = second.json()
    assert set(delivered) == BODY_KEYS
    assert delivered == {"id": accepted["id"], "event": "deploy.finished", "severity": "warning",
                         "payload": {"service": "api", "version": "1.2.3"}, "created_at": stored["created_at"]}
    with pytest.raises(WebhookVerificationError):
        Webhook(STANDARD_SECRET).verify(second.body.replace(b"1.2.3", b"6.6.6"), second.headers)

    # e11: x-e11-signature is sha256=<hex HMAC-SHA256(secret, body)>.
    [e11] = await receiver.wait_count(1, "/e11")
    expected = "sha256=" + hmac.new(E11_SECRET.encode(), e11.body, hashlib.sha256).hexdigest()
    assert e11.headers["x-e11-signature"] == expected
    assert "webhook-signature" not in e11.headers
    assert e11.json() == {"id": accepted2["id"], "event": "build.done", "severity": "info",
                          "payload": {"commit": "abc123"}, "created_at": e11.json()["created_at"]}
    await daemon.wait_settled(accepted2["id"], 1)
    assert len(receiver.requests) == 3


async def test_it_retries_after_500_then_delivers(start_daemon, receiver):
    receiver.script("/hook", Reply(500, b"upstream on fire"), 200)
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "*", ["hook"])])

    accepted = await daemon.post_event("pr.run.failed", {"repo": "alertd"}, severity="error")
    event = await daemon.wait_settled(accepted["id"], 1)

    [delivery] = event["deliveries"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 2
    failed, delivered = delivery["attempts_list"]
    assert failed["number"] == 1 and failed["outcome"] == "failed" and failed["http_status"] == 500
    assert failed["error"] == "HTTP 500: upstream on fire"
    assert delivered["number"] == 2 and delivered["outcome"] == "delivered" and delivered["http_status"] == 200
    assert delivered["error"] is None
    assert [r.event_id for r in receiver.at("/hook")] == [accepted["id"], accepted["id"]]


async def test_a_400_is_dead_after_exactly_one_attempt(start_daemon, receiver):
    receiver.script("/hook", Reply(400, b"schema mismatch"))
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "*", ["hook"])])

    accepted = await daemon.post_event("pr.run.failed", {"repo": "alertd"})
    event = await daemon.wait_settled(accepted["id"], 1)

    [delivery] = event["deliveries"]
    assert delivery["state"] == "dead" and delivery["attempts"] == 1
    assert delivery["last_error"] == "HTTP 400: schema mismatch"
    [attempt] = delivery["attempts_list"]
    assert attempt["outcome"] == "failed" and attempt["http_status"] == 400
    assert len(receiver.at("/hook")) == 1
    dead = await daemon.all_deliveries(state="dead")
    assert [d["id"] for d in dead] == [delivery["id"]]


async def test_a_redirect_is_never_followed_and_410_asks_to_be_disabled(start_daemon, receiver):
    receiver.script("/moved", Reply(302, headers={"Location": receiver.url("/elsewhere")}))
    receiver.script("/gone", Reply(410, b"endpoint removed"))
    daemon = await start_daemon(channels=[webhook("moved", receiver.url("/moved")),
                                          webhook("gone", receiver.url("/gone"))],
                                routes=[route("all", "*", ["moved", "gone"])])

    accepted = await daemon.post_event("deploy.done")
    event = await daemon.wait_settled(accepted["id"], 2)

    by_channel = {d["channel"]: d for d in event["deliveries"]}
    assert by_channel["moved"]["state"] == "dead" and by_channel["moved"]["attempts"] == 1
    assert by_channel["moved"]["last_error"] == "HTTP 302: redirect not followed"
    assert by_channel["gone"]["state"] == "dead" and by_channel["gone"]["attempts"] == 1
    assert "asked to be disabled" in by_channel["gone"]["last_error"]
    assert receiver.at("/elsewhere") == []


async def test_a_429_retry_after_is_the_earliest_next_attempt(start_daemon, receiver):
    receiver.script("/hook", Reply(429, headers={"Retry-After": "1"}), 200)
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "*", ["hook"])])

    accepted = await daemon.post_event("deploy.done")
    [delivery] = (await daemon.wait_settled(accepted["id"], 1))["deliveries"]

    assert delivery["state"] == "delivered" and delivery["attempts"] == 2
    first, second = receiver.at("/hook")
    assert second.arrived - first.arrived >= 1.0  # the backoff alone would be under 200 ms
    assert [a["http_status"] for a in delivery["attempts_list"]] == [429, 200]
