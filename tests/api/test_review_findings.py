"""Regression tests for the correctness review, through the in-process daemon."""

from __future__ import annotations

import asyncio
import sqlite3

import orjson

from alertd.api import manage
from alertd.store import ops
from tests.api.conftest import PRODUCER

CONFIRM = {"X-Confirm-Destructive": "true"}


async def _dead(hub) -> list:  # type: ignore[no-untyped-def]
    return (await hub.call("GET", "/v1/admin/dlq"))[1]["deliveries"]


async def test_a_dead_letter_retried_while_a_refill_runs_is_sent_once(hub):
    hub.receiver_status["code"] = 400
    _, body = await hub.call("POST", "/v1/events", {"event": "pr.fail"}, key=PRODUCER)
    event_id = body["id"]

    async def one_dead() -> bool:
        return len(await _dead(hub)) == 1

    await hub.until(one_dead)
    hub.receiver_status["code"] = 200
    [dead] = await _dead(hub)
    runtime = hub.daemon.runtime
    reader = runtime.store.read
    events_by_id = reader.events_by_id
    turns = {"refill": 1}

    async def events_by_id_with_a_refill_in_between(ids):  # type: ignore[no-untyped-def]
        # the refill loop gets its turn while the retry handler is still reading what it reopened
        if turns["refill"]:
            turns["refill"] -= 1
            await runtime.dispatcher.refill()
        return await events_by_id(ids)

    reader.events_by_id = events_by_id_with_a_refill_in_between  # type: ignore[method-assign]
    status, body = await hub.call("POST", "/v1/admin/dlq/retry", {"ids": [dead["id"]]})
    assert status == 202 and body["retried"] == 1 and turns["refill"] == 0

    async def delivered() -> bool:
        _, event = await hub.call("GET", f"/v1/admin/events/{event_id}")
        return event["deliveries"][0]["state"] == "delivered"

    await hub.until(delivered)
    await asyncio.sleep(0.3)  # room for a second copy to go out
    sends = [b for b in hub.received if orjson.loads(b)["id"] == event_id]
    assert len(sends) == 2  # the refused first attempt and one delivery, not two


async def test_a_channel_an_escalation_step_uses_cannot_be_deleted(hub):
    for name in ("pager", "ops"):
        status, _ = await hub.call("POST", "/v1/admin/channels",
                                   {"name": name, "type": "webhook", "url": f"{hub.receiver_url}/{name}"})
        assert status == 201
    status, _ = await hub.call("POST", "/v1/admin/routes", {
        "name": "deploys", "match": "deploy.*", "channels": ["ops"],
        "escalate": [{"after": "10m", "channels": ["pager"]}]})
    assert status == 201
    status, body = await hub.call("DELETE", "/v1/admin/channels/pager", headers=CONFIRM)
    assert status == 409 and "deploys" in body["error"]["message"]
    # the route is still in force: deleting its escalation channel must not silently drop the whole route
    assert (await hub.call("GET", "/v1/admin/routes/deploys"))[0] == 200
    status, body = await hub.call("POST", "/v1/events", {"event": "deploy.done"}, key=PRODUCER)
    assert status == 202 and body["deliveries"] == 1


async def test_a_fallback_cycle_cannot_be_made_through_the_api(hub):
    url = f"{hub.receiver_url}/x"
    assert (await hub.call("POST", "/v1/admin/channels", {"name": "a", "type": "webhook", "url": url}))[0] == 201
    status, _ = await hub.call("POST", "/v1/admin/channels",
                               {"name": "b", "type": "webhook", "url": url, "fallback": "a"})
    assert status == 201
    status, body = await hub.call("PATCH", "/v1/admin/channels/a", {"fallback": "b"})
    assert status == 400 and "circle" in body["error"]["message"]


async def test_an_api_channel_with_a_fallback_stays_in_force(hub):
    status, _ = await hub.call("POST", "/v1/admin/channels",
                               {"name": "ops", "type": "webhook", "url": f"{hub.receiver_url}/ops"})
    assert status == 201
    assert (await hub.call("POST", "/v1/admin/routes",
                           {"name": "deploys", "match": "deploy.*", "channels": ["ops"]}))[0] == 201
    status, body = await hub.call("PATCH", "/v1/admin/channels/ops", {"fallback": "hook"})
    assert status == 200 and body["config"]["fallback"] == "hook"
    # it used to be validated alone at snapshot time, fail ("no channel named 'hook'") and silently drop out,
    # taking its route with it
    assert "ops" in hub.daemon.runtime.live.channels
    status, body = await hub.call("POST", "/v1/events", {"event": "deploy.done"}, key=PRODUCER)
    assert status == 202 and body["deliveries"] == 1


async def test_a_reload_that_tightens_allow_private_takes_effect_or_is_refused(hub):
    hub.config_path.write_text(hub.config_path.read_text().replace('allow_private = ["127.0.0.0/8"]',
                                                                   "allow_private = []"))
    status, body = await hub.call("POST", "/v1/admin/reload")
    if status == 400:
        assert "[net] changed: that takes a restart" in body["error"]["message"]
        return  # refused with a reason: acceptable
    _, body = await hub.call("POST", "/v1/events", {"event": "pr.run.failed"}, key=PRODUCER)

    async def settled() -> bool:
        _, event = await hub.call("GET", f"/v1/admin/events/{body['id']}")
        return event["deliveries"][0]["state"] in ("delivered", "dead")

    await hub.until(settled)
    _, event = await hub.call("GET", f"/v1/admin/events/{body['id']}")
    assert event["deliveries"][0]["state"] == "dead"  # 127.0.0.1 is no longer allowed


async def _three_delivered(hub) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        assert (await hub.call("POST", "/v1/events", {"event": "pr.run.failed", "payload": {"i": i}},
                               key=PRODUCER))[0] == 202

    async def delivered() -> bool:
        return len(hub.received) == 3

    await hub.until(delivered)


async def test_a_bulk_replay_the_store_cannot_commit_makes_and_sends_nothing(hub, monkeypatch):
    # each replayed delivery was committed on its own: the client got "503, nothing was changed" while the
    # first ones were stored and sent, and sent again when it retried
    await _three_delivered(hub)
    real, calls = ops.add_deliveries, []

    def fails_on_the_second(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "add_deliveries", fails_on_the_second)
    status, body = await hub.call("POST", "/v1/admin/deliveries/replay", {"ids": [1, 2, 3]})
    assert status == 503 and body["error"]["code"] == "store_unavailable"
    monkeypatch.setattr(ops, "add_deliveries", real)
    await asyncio.sleep(0.3)
    _, listed = await hub.call("GET", "/v1/admin/deliveries?limit=10")
    assert len(listed["deliveries"]) == 3 and len(hub.received) == 3
    status, body = await hub.call("POST", "/v1/admin/deliveries/replay", {"ids": [1, 2, 3]})
    assert status == 202 and len(body["deliveries"]) == 3


async def test_replaying_a_delivery_to_a_channel_no_longer_configured_is_refused(hub):
    status, _ = await hub.call("POST", "/v1/admin/channels", {"name": "tmp", "type": "webhook",
                                                              "url": f"{hub.receiver_url}/tmp"})
    assert status == 201
    status, body = await hub.call("POST", "/v1/admin/deliveries/replay", {"ids": [1]})
    assert status == 404  # nothing yet
    route = {"name": "t", "match": "deploy.*", "channels": ["tmp"]}
    assert (await hub.call("POST", "/v1/admin/routes", route))[0] == 201
    _, event = await hub.call("POST", "/v1/events", {"event": "deploy.tmp"}, key=PRODUCER)

    async def settled() -> bool:
        _, found = await hub.call("GET", f"/v1/admin/events/{event['id']}")
        return found["deliveries"][0]["state"] == "delivered"

    await hub.until(settled)
    headers = {"X-Confirm-Destructive": "true"}
    assert (await hub.call("DELETE", "/v1/admin/routes/t", headers=headers))[0] == 200
    assert (await hub.call("DELETE", "/v1/admin/channels/tmp", headers=headers))[0] == 200
    _, found = await hub.call("GET", f"/v1/admin/events/{event['id']}")
    status, body = await hub.call("POST", "/v1/admin/deliveries/replay", {"ids": [found["deliveries"][0]["id"]]})
    assert status == 400 and body["error"]["code"] == "unknown_channel", body  # was a 202, then dead at once


async def test_a_dead_letter_retry_by_filter_says_when_more_matched_than_it_retried(hub, monkeypatch):
    monkeypatch.setattr(manage, "MAX_BULK", 3)
    hub.receiver_status["code"] = 400
    for i in range(5):
        await hub.call("POST", "/v1/events", {"event": "pr.run.failed", "payload": {"i": i}}, key=PRODUCER)

    async def five_dead() -> bool:
        return len(await _dead(hub)) == 5

    await hub.until(five_dead)
    hub.receiver_status["code"] = 200  # what is retried now goes out, instead of dying again before the next call
    headers = {"X-Confirm-Destructive": "true"}
    status, body = await hub.call("POST", "/v1/admin/dlq/retry", {"filter": {"channel": "hook"}}, headers=headers)
    assert status == 202 and body["retried"] == 3 and body["more"] is True  # it used to stop there silently
    status, body = await hub.call("POST", "/v1/admin/dlq/retry", {"filter": {"channel": "hook"}}, headers=headers)
    assert status == 202 and body["retried"] == 2 and body["more"] is False
