"""POST /v1/events at the edge: idempotency under a race, auth, limits and validation errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.conftest import PRODUCER_KEY, SCOPED_KEY, route, webhook

pytestmark = pytest.mark.e2e

KEYS = [{"name": "producer", "key": PRODUCER_KEY},
        {"name": "pr-bot", "key": SCOPED_KEY, "events": ["pr.*"]}]


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status == status, (response.status, response.body)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "field"}
    if field is not None:
        assert error.get("field") == field, error
    assert "Traceback" not in error["message"]
    return error


async def test_fifty_concurrent_posts_with_one_idempotency_key_make_one_event(start_daemon, receiver):
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "*", ["hook"])])
    body = {"event": "payments.refund.issued", "payload": {"refund": "re_1"}, "idempotency_key": "refund-re_1"}

    responses = await asyncio.gather(*(daemon.post_events(body) for _ in range(50)))

    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 49 + [202]
    [created] = [r.json() for r in responses if r.status == 202]
    assert created["duplicate"] is False and created["deliveries"] == 1
    for duplicate in (r.json() for r in responses if r.status == 200):
        assert duplicate == {"id": created["id"], "duplicate": True, "skipped": True}
    events = await daemon.all_events()
    assert [e["id"] for e in events] == [created["id"]]
    assert events[0]["idempotency_key"] == "refund-re_1"
    await daemon.wait_settled(created["id"], 1)
    assert len(await daemon.all_deliveries()) == 1
    assert receiver.event_ids() == [created["id"]]


async def test_keys_are_checked_for_presence_scope_and_role(start_daemon):
    daemon = await start_daemon(keys=KEYS)

    missing = await daemon.post_events({"event": "deploy.done"}, key=None)
    assert_error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_error(await daemon.post_events({"event": "deploy.done"}, key="alertd_not_a_known_key_at_all"),
                 401, "unauthorized")
    assert_error(await daemon.request("GET", "/v1/admin/events"), 401, "unauthorized")

    out_of_scope = await daemon.post_events({"event": "deploy.done"}, key=SCOPED_KEY)
    assert_error(out_of_scope, 403, "forbidden", "event")
    in_batch = await daemon.post_events([{"event": "pr.opened"}, {"event": "deploy.done"}], key=SCOPED_KEY)
    assert_error(in_batch, 403, "forbidden", "[1].event")
    in_scope = await daemon.post_events({"event": "pr.opened", "payload": {"pr": 7}}, key=SCOPED_KEY)
    assert in_scope.status == 202

    for key in (PRODUCER_KEY, SCOPED_KEY):
        assert_error(await daemon.request("GET", "/v1/admin/events", key=key), 403, "forbidden")
        assert_error(await daemon.request("GET", "/v1/admin/events", headers={"Authorization": f"Bearer {key}"}),
                     403, "forbidden")
    events = await daemon.all_events()
    assert [(e["event"], e["source"]) for e in events] == [("pr.opened", "pr-bot")]


async def test_a_body_over_max_body_bytes_is_413(start_daemon):
    # The environment overrides the TOML (ALERTD_<SECTION>__<KEY>).
    daemon = await start_daemon(server={"max_body_bytes": 65536}, env={"ALERTD_SERVER__MAX_BODY_BYTES": "2048"})

    def sized(total: int) -> bytes:
        head, tail = b'{"event": "logs.line", "payload": {"text": "', b'"}}'
        return head + b"x" * (total - len(head) - len(tail)) + tail

    assert (await daemon.post_events(data=sized(2048))).status == 202
    error = assert_error(await daemon.post_events(data=sized(2049)), 413, "too_large")
    assert "2048" in error["message"]
    assert len(await daemon.all_events()) == 1


async def test_a_batch_over_500_is_413_and_500_is_accepted(start_daemon):
    daemon = await start_daemon()

    too_many = await daemon.post_events([{"event": "logs.line"}] * 501)
    assert_error(too_many, 413, "too_large", "body")
    assert await daemon.all_events() == []
    fine = await daemon.post_events([{"event": "logs.line"}] * 500)
    assert fine.status == 202 and len(fine.json()["events"]) == 500


BAD_NAMES = ["Pr.Run", "a..b", "a.*", "*", "a" * 201, "", "pr run", ".pr", "pr.", "pr/run", "é.x", None, 7]


async def test_bad_event_names_are_400_invalid_event(start_daemon):
    daemon = await start_daemon()
    for name in BAD_NAMES:
        assert_error(await daemon.post_events({"event": name, "payload": {}}), 400, "invalid_event", "event")
        assert_error(await daemon.post_events([{"event": "ok.name"}, {"event": name}]), 400, "invalid_event",
                     "[1].event")
    assert await daemon.all_events() == []
    assert (await daemon.post_events({"event": "a" * 200})).status == 202  # the longest name is fine


async def test_malformed_bodies_are_400_and_nothing_is_stored(start_daemon):
    daemon = await start_daemon()
    deep_payload = b'{"event": "deep.payload", "payload": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000 + b"}"
    deep_list = b'{"event": "deep.payload", "payload": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"
    nested_40 = {"event": "deep.payload", "payload": json.loads('{"a": ' * 40 + "1" + "}" * 40)}

    assert_error(await daemon.post_events(data=b'{"event": "x", '), 400, "invalid_json", "body")
    assert_error(await daemon.post_events(data=b"   "), 400, "invalid_json", "body")
    assert_error(await daemon.post_events(data=b'{"event": "x", "payload": {"k": "\xff\xfe"}}'), 400, "invalid_json")
    assert_error(await daemon.post_events(data=b'{"event": "\xc3\x28"}'), 400, "invalid_json")
    for deep in (deep_payload, deep_list):
        response = await daemon.post_events(data=deep)
        assert response.status == 400, response.body
        assert response.json()["error"]["code"] in ("invalid_json", "invalid_event")
    assert_error(await daemon.post_events(nested_40), 400, "invalid_event", "payload")
    assert_error(await daemon.post_events({"event": "x", "payload": []}), 400, "invalid_event", "payload")
    assert_error(await daemon.post_events({"event": "x", "extra": 1}), 400, "invalid_event", "extra")
    assert_error(await daemon.post_events({"event": "x", "severity": "loud"}), 400, "invalid_event", "severity")
    assert_error(await daemon.post_events([]), 400, "invalid_event")
    assert_error(await daemon.post_events(["x"]), 400, "invalid_event", "[0]")

    assert await daemon.all_events() == []
    assert (await daemon.request("GET", "/ready")).status == 200  # and the daemon is fine
    stored = await daemon.post_event("x", severity="urgent")
    assert stored["severity"] == "critical"
