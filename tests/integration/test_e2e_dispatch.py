"""How the dispatcher schedules work: per-channel isolation, severity first, routing, the URL policy."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.conftest import HANG, Reply, free_port, route, slow, webhook

pytestmark = pytest.mark.e2e


async def test_a_hanging_receiver_does_not_delay_another_channel(start_daemon, make_receiver):
    stuck, healthy = await make_receiver(), await make_receiver()
    stuck.script("/hook", HANG)
    daemon = await start_daemon(
        channels=[webhook("stuck", stuck.url(), timeout="1s", max_attempts=1),
                  webhook("healthy", healthy.url())],
        routes=[route("all", "*", ["stuck", "healthy"])])

    t0 = time.monotonic()
    accepted = await asyncio.gather(*(daemon.post_event("deploy.done", {"n": n}) for n in range(5)))
    assert all(a["deliveries"] == 2 for a in accepted)
    arrived = await healthy.wait_count(5, "/hook", timeout=5.0)
    elapsed = arrived[-1].arrived - t0

    # All five reached the healthy receiver while every attempt at the stuck one was still running.
    assert elapsed < 1.0, f"the healthy channel took {elapsed:.2f}s"
    stuck_now = await daemon.all_deliveries(channel="stuck")
    assert len(stuck_now) == 5 and all(d["attempts"] == 0 for d in stuck_now), stuck_now
    assert sorted(r.event_id for r in arrived) == sorted(a["id"] for a in accepted)

    # And the stuck ones then time out on their own clock.
    for a in accepted:
        event = await daemon.wait_settled(a["id"], 2, timeout=5.0)
        by_channel = {d["channel"]: d for d in event["deliveries"]}
        assert by_channel["healthy"]["state"] == "delivered"
        assert by_channel["stuck"]["state"] == "dead"
        assert by_channel["stuck"]["last_error"].startswith("timed out after 1.")
    assert len(stuck.at("/hook")) == 5


async def test_a_critical_event_overtakes_an_info_backlog(start_daemon, receiver):
    receiver.script("/hook", slow(20))
    daemon = await start_daemon(channels=[webhook("slow", receiver.url(), concurrency=1)],
                                routes=[route("all", "*", ["slow"])])

    batch = await daemon.post_events([{"event": "metrics.sample", "payload": {"n": n}} for n in range(500)])
    assert batch.status == 202 and len(batch.json()["events"]) == 500
    critical = await daemon.post_event("db.primary.down", {"host": "db1"}, severity="critical")

    await receiver.wait_for(lambda rs: critical["id"] in [r.event_id for r in rs], timeout=10.0,
                            what="the critical event")
    position = receiver.event_ids("/hook").index(critical["id"])
    assert position < 100, f"the critical event arrived {position}th"
    pending = await daemon.all_deliveries(state="pending")
    assert len(pending) > 300  # most of the info backlog is still waiting


async def test_routes_respect_severity_floors_and_one_channel_gets_one_delivery(start_daemon, make_receiver):
    ops, audit = await make_receiver(), await make_receiver()
    daemon = await start_daemon(
        channels=[webhook("ops", ops.url()), webhook("audit", audit.url())],
        routes=[route("deploy-errors", "deploy.*", ["ops"], min_severity="error"),
                route("billing", "billing.*", ["audit"]),
                route("billing-failures", "billing.charge.failed", ["audit"])])

    warning = await daemon.post_event("deploy.failed", {"service": "api"}, severity="warning")
    assert warning["deliveries"] == 0
    unmatched = await daemon.post_event("signup.created", {"plan": "free"})
    assert unmatched["deliveries"] == 0
    error = await daemon.post_event("deploy.failed", {"service": "api"}, severity="error")
    assert error["deliveries"] == 1
    charge = await daemon.post_event("billing.charge.failed", {"invoice": "inv_1"}, severity="warning")
    assert charge["deliveries"] == 1

    for quiet in (warning, unmatched):
        stored = await daemon.event(quiet["id"])
        assert stored["deliveries"] == [] and stored["event"] in ("deploy.failed", "signup.created")
    assert [d["channel"] for d in (await daemon.wait_settled(error["id"], 1))["deliveries"]] == ["ops"]
    assert [d["channel"] for d in (await daemon.wait_settled(charge["id"], 1))["deliveries"]] == ["audit"]
    # The error event was posted after the warning one: had the warning been sent, it would be here by now.
    assert ops.event_ids() == [error["id"]]
    assert audit.event_ids() == [charge["id"]]
    listed = {e["id"]: e["deliveries"] for e in await daemon.all_events()}
    assert listed == {warning["id"]: 0, unmatched["id"]: 0, error["id"]: 1, charge["id"]: 1}


async def test_a_loopback_webhook_is_dead_when_private_addresses_are_not_allowed(start_daemon, receiver):
    daemon = await start_daemon(
        channels=[webhook("literal", receiver.url()),
                  webhook("named", f"http://localhost:{receiver.port}/hook")],
        routes=[route("all", "*", ["literal", "named"])],
        net={"allow_private": []})

    accepted = await daemon.post_event("deploy.done", {"service": "api"})
    event = await daemon.wait_settled(accepted["id"], 2)

    for delivery in event["deliveries"]:
        assert delivery["state"] == "dead" and delivery["attempts"] == 1, delivery
        assert "outbound URL policy" in delivery["last_error"], delivery
        [attempt] = delivery["attempts_list"]
        assert attempt["outcome"] == "failed" and attempt["http_status"] is None
    assert receiver.requests == []


async def test_a_webhook_to_a_closed_port_is_retried_until_max_attempts(start_daemon):
    port = free_port()  # nothing listens here
    daemon = await start_daemon(channels=[webhook("gone", f"http://127.0.0.1:{port}/hook", max_attempts=3)],
                                routes=[route("all", "*", ["gone"])])

    accepted = await daemon.post_event("deploy.done")
    [delivery] = (await daemon.wait_settled(accepted["id"], 1))["deliveries"]

    assert delivery["state"] == "dead" and delivery["attempts"] == 3
    assert all(a["error"].startswith("connection failed") for a in delivery["attempts_list"])


async def test_a_critical_delivery_waiting_to_retry_does_not_stall_lower_severities(start_daemon, receiver):
    def answer(request):
        critical = request.json()["severity"] == "critical"
        return Reply(503, headers={"Retry-After": "3"}) if critical else Reply(200)

    receiver.script("/hook", answer)
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "*", ["hook"])])
    await daemon.post_event("db.primary.down", severity="critical")
    await receiver.wait_count(1)

    info = await daemon.post_event("metrics.sample")
    await daemon.wait_settled(info["id"], 1, timeout=1.5)
