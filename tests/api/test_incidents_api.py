"""Escalation, acknowledgement and approval through the daemon, with a manual clock."""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from alertd.clock import ManualClock
from alertd.config import load_config
from alertd.daemon import Daemon
from alertd.links import sign
from tests.api.conftest import PRODUCER, Hub, config_text, start_receiver

EXTRA = """
[[channels]]
name = "sms"
type = "webhook"
url = "RECEIVER/sms"
[[channels]]
name = "voice"
type = "webhook"
url = "RECEIVER/voice"
[[channels]]
name = "runner"
type = "webhook"
url = "RECEIVER/runner"
[[routes]]
name = "pages"
match = "deploy.*"
channels = ["hook"]
escalate = [{ after = "10m", channels = ["sms"] }, { after = "30m", channels = ["voice"] }]
actions = ["restart-api"]
[[routes]]
name = "approved"
match = "alertd.action.approved"
channels = ["runner"]
"""


@pytest.fixture
async def paging(tmp_path: Path) -> AsyncIterator[tuple[Hub, ManualClock, dict[str, list[dict]]]]:
    received: dict[str, list[dict]] = {"hook": [], "sms": [], "voice": [], "runner": []}

    async def receive(request: web.Request) -> web.Response:
        received[request.path.strip("/")].append(orjson.loads(await request.read()))
        return web.Response()

    runner, url = await start_receiver(receive)
    path = tmp_path / "alertd.toml"
    path.write_text(config_text(tmp_path, url, EXTRA.replace("RECEIVER", url)))
    clock = ManualClock()
    daemon = Daemon(load_config(path), clock=clock)
    await daemon.start()
    async with aiohttp.ClientSession() as session:
        hub = Hub(daemon, session, [], url, path)
        HUB[:] = [hub]
        yield hub, clock, received
    await daemon.stop()
    await runner.cleanup()


async def until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


HUB: list[Hub] = []


def link(message: dict, kind: str) -> str:
    """The link from a message, followed on the test daemon (its public_url is the default)."""
    [found] = [entry["url"] for entry in message.get("links", []) if f"/{kind}/" in entry["url"]]
    assert found.startswith("http://127.0.0.1:8040/")
    return HUB[0].base + found.removeprefix("http://127.0.0.1:8040")


async def open_incident(hub: Hub, received: dict, **extra) -> dict:
    status, body = await hub.call("POST", "/v1/events", {"event": "deploy.failed", "severity": "critical", **extra},
                                  key=PRODUCER)
    assert status == 202, body
    await until(lambda: len(received["hook"]) == 1)
    return received["hook"][0]


async def test_an_unacknowledged_incident_escalates_step_by_step(paging):
    hub, clock, received = paging
    message = await open_incident(hub, received)
    assert "/ack/" in link(message, "ack")
    _, listed = await hub.call("GET", "/v1/admin/incidents")
    [incident] = listed["incidents"]
    assert incident["state"] == "open" and incident["step"] == 0
    clock.advance(599)
    await asyncio.sleep(0.05)
    assert received["sms"] == []
    clock.advance(2)
    await until(lambda: len(received["sms"]) == 1)
    assert "Acknowledge:" in received["sms"][0]["payload"].get("summary", "") or received["sms"][0]["links"]
    clock.advance(20 * 60)
    await until(lambda: len(received["voice"]) == 1)
    _, detail = await hub.call("GET", f"/v1/admin/events/{message['id']}")
    assert [d["origin"] for d in detail["deliveries"]] == ["route", "escalation", "escalation"]
    _, audit = await hub.call("GET", "/v1/admin/audit")
    assert [a["what"] for a in audit["audit"]] == ["incident.escalated", "incident.escalated", "incident.opened"]


async def test_a_step_later_than_link_ttl_still_sends_a_link_that_works(paging):
    # link_ttl is 24h: a step that fires 25h after the incident opened must not carry the link signed then
    hub, clock, received = paging
    first = link(await open_incident(hub, received), "ack")
    clock.advance(25 * 3600)
    await until(lambda: len(received["sms"]) == 1)
    later = link(received["sms"][0], "ack")
    assert later != first
    async with hub.session.get(first) as response:
        assert response.status == 410  # the first link did expire
    async with hub.session.post(later) as response:
        assert response.status == 200 and "Acknowledged" in await response.text()
    _, listed = await hub.call("GET", "/v1/admin/incidents?state=acked")
    assert len(listed["incidents"]) == 1


async def test_an_ack_stops_the_remaining_steps_and_get_changes_nothing(paging):
    hub, clock, received = paging
    url = link(await open_incident(hub, received), "ack")
    async with hub.session.get(url) as response:
        page = await response.text()
        assert response.status == 200 and "Acknowledge this incident?" in page and "<form method=\"post\"" in page
        assert response.headers["Cache-Control"] == "no-store"
    _, listed = await hub.call("GET", "/v1/admin/incidents")
    assert listed["incidents"][0]["state"] == "open"
    async with hub.session.post(url) as response:
        assert response.status == 200 and "Acknowledged" in await response.text()
    clock.advance(3600)
    await asyncio.sleep(0.1)
    assert received["sms"] == [] and received["voice"] == []
    _, listed = await hub.call("GET", "/v1/admin/incidents?state=acked")
    assert listed["incidents"][0]["acked_by"].startswith("link:")


async def test_twenty_concurrent_uses_of_one_ack_link_ack_exactly_once(paging):
    hub, _, received = paging
    url = link(await open_incident(hub, received), "ack")

    async def use() -> int:
        async with hub.session.post(url) as response:
            return response.status

    statuses = await asyncio.gather(*(use() for _ in range(20)))
    assert sorted(statuses) == [200] + [409] * 19
    _, audit = await hub.call("GET", "/v1/admin/audit")
    assert [a["what"] for a in audit["audit"]].count("incident.acked") == 1


async def test_forged_expired_and_reused_links_are_refused_with_a_clear_page(paging):
    hub, clock, received = paging
    url = link(await open_incident(hub, received), "ack")
    token = url.rsplit("/", 1)[1]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    async with hub.session.post(f"{hub.base}/ack/{forged}") as response:
        assert response.status == 400 and "not valid" in await response.text()
    other_secret = sign(b"x" * 32, "ack", 1, clock.now() + 60)
    async with hub.session.get(f"{hub.base}/ack/{other_secret}") as response:
        assert response.status == 400
    async with hub.session.post(url) as response:
        assert response.status == 200
    async with hub.session.post(url) as response:
        assert response.status == 409 and "already been used" in await response.text()
    clock.advance(86400 + 1)
    async with hub.session.get(url) as response:
        assert response.status == 410 and "expired" in await response.text()
    async with hub.session.get(f"{hub.base}/ack/" + "<script>") as response:
        assert response.status == 400 and "<script>" not in await response.text()


async def test_an_admin_acks_through_the_api_and_the_cli_path(paging):
    hub, clock, received = paging
    await open_incident(hub, received)
    _, listed = await hub.call("GET", "/v1/admin/incidents")
    incident_id = listed["incidents"][0]["id"]
    status, body = await hub.call("POST", f"/v1/admin/incidents/{incident_id}/ack")
    assert status == 200 and body["state"] == "acked" and body["acked_by"] == "key:admin"
    assert (await hub.call("POST", f"/v1/admin/incidents/{incident_id}/ack"))[0] == 409
    assert (await hub.call("POST", "/v1/admin/incidents/99999/ack"))[0] == 404
    assert (await hub.call("POST", "/v1/admin/incidents/x/ack"))[0] == 404
    clock.advance(3600)
    await asyncio.sleep(0.1)
    assert received["sms"] == []


async def test_an_approved_action_emits_an_event_that_is_routed_and_nothing_runs_before(paging):
    hub, _, received = paging
    message = await open_incident(hub, received, actions=[{"name": "restart-api", "label": "Restart API"}])
    url = link(message, "approve")
    async with hub.session.get(url) as response:
        assert response.status == 200 and "Approve “Restart API”?" in await response.text()
    await asyncio.sleep(0.05)
    assert received["runner"] == []
    async with hub.session.post(url) as response:
        assert response.status == 200
    await until(lambda: len(received["runner"]) == 1)
    approved = received["runner"][0]
    assert approved["event"] == "alertd.action.approved"
    assert approved["payload"]["action"] == "restart-api" and approved["payload"]["event_id"] == message["id"]
    async with hub.session.post(url) as response:
        assert response.status == 409
    await asyncio.sleep(0.05)
    assert len(received["runner"]) == 1


async def test_an_action_no_route_allows_is_refused_and_nothing_is_stored(paging):
    hub, _, _ = paging
    status, body = await hub.call("POST", "/v1/events", {"event": "deploy.failed", "actions": [{"name": "rm-rf"}]},
                                  key=PRODUCER)
    assert status == 400 and body["error"]["field"] == "actions" and "not allowed" in body["error"]["message"]
    for bad in ([{"name": "Bad Name"}], "restart", [{"name": "a", "label": ""}], [{"name": "a", "x": 1}],
                [{"name": "a"}] * 11):
        status, body = await hub.call("POST", "/v1/events", {"event": "deploy.failed", "actions": bad}, key=PRODUCER)
        assert status == 400 and body["error"]["field"].startswith("actions"), bad
    _, events = await hub.call("GET", "/v1/admin/events")
    assert events["events"] == []


async def test_escalation_survives_a_restart(paging, tmp_path):
    hub, clock, received = paging
    await open_incident(hub, received)
    await hub.daemon.stop()
    clock.advance(11 * 60)  # the first step came due while alertd was down
    daemon = Daemon(load_config(hub.config_path), clock=clock)
    await daemon.start()
    try:
        await until(lambda: len(received["sms"]) == 1)
    finally:
        await daemon.stop()
        hub.daemon = daemon


def test_links_look_like_urls_under_the_public_url():
    assert re.match(r"^https?://", "http://127.0.0.1:8040/ack/abc")


async def test_a_backlog_sent_right_after_a_restart_carries_its_ack_link(tmp_path):
    # the restart's first refill sends at once: the links must be loaded before any lane sends
    answer = asyncio.Event()  # until set, the receiver holds every request open
    received: list[dict] = []

    async def receive(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if answer.is_set():
            received.append(body)  # only what the restarted daemon sends
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answer.wait(), 5)
        return web.Response()

    runner, url = await start_receiver(receive)
    path = tmp_path / "alertd.toml"
    path.write_text(config_text(tmp_path, url, EXTRA.replace("RECEIVER", url)).replace(
        'listen = "127.0.0.1:0"', 'listen = "127.0.0.1:0"\ndrain_timeout = "100ms"'))
    try:
        first = Daemon(load_config(path), clock=ManualClock())
        await first.start()
        async with aiohttp.ClientSession() as session:
            hub = Hub(first, session, [], url, path)
            status, _ = await hub.call("POST", "/v1/events", {"event": "deploy.failed", "severity": "critical"},
                                       key=PRODUCER)
            assert status == 202
            await asyncio.sleep(0.2)  # the attempt is out, held by the receiver
        await first.stop()  # the drain gives up on it: still pending, no attempt recorded
        assert received == []
        answer.set()
        second = Daemon(load_config(path), clock=ManualClock())
        await second.start()
        try:
            await until(lambda: len(received) == 1)
            assert "/ack/" in received[0]["links"][0]["url"], received
        finally:
            await second.stop()
    finally:
        answer.set()
        await runner.cleanup()


async def test_retention_keeps_an_event_whose_approval_is_pending_while_its_link_can_be_used(tmp_path):
    # retention_days shorter than link_ttl: the event was purged, and a later approval was recorded but
    # never carried out ("This action was already pending.")
    received: dict[str, list[dict]] = {"hook": [], "runner": []}

    async def receive(request: web.Request) -> web.Response:
        received[request.path.strip("/")].append(orjson.loads(await request.read()))
        return web.Response()

    runner, url = await start_receiver(receive)
    extra = ('[[channels]]\nname = "runner"\ntype = "webhook"\nurl = "RECEIVER/runner"\n[[routes]]\nname = "deploys"\n'
             'match = "deploy.*"\nchannels = ["hook"]\nactions = ["restart-api"]\n[[routes]]\nname = "approved"\n'
             'match = "alertd.action.approved"\nchannels = ["runner"]\n[scheduler]\nlink_ttl = "7d"\n')
    path = tmp_path / "alertd.toml"
    path.write_text(config_text(tmp_path, url, extra.replace("RECEIVER", url)).replace(
        'synchronous = "normal"', 'synchronous = "normal"\nretention_days = 1'))
    clock = ManualClock()
    daemon = Daemon(load_config(path), clock=clock)
    await daemon.start()
    try:
        async with aiohttp.ClientSession() as session:
            hub = Hub(daemon, session, [], url, path)
            HUB[:] = [hub]
            status, _ = await hub.call("POST", "/v1/events", {"event": "deploy.failed", "actions": [
                {"name": "restart-api", "label": "Restart API"}]}, key=PRODUCER)
            assert status == 202
            await until(lambda: len(received["hook"]) == 1)
            approve = link(received["hook"][0], "approve")
            clock.advance(2 * 86400)  # past retention, well inside the link's 7 days
            assert await daemon.runtime.scheduler.purge() == 0
            async with session.post(approve) as response:
                assert response.status == 200
            await until(lambda: len(received["runner"]) == 1)
            clock.advance(8 * 86400)  # the request is decided: the event may go now
            assert await daemon.runtime.scheduler.purge() >= 1
    finally:
        await daemon.stop()
        await runner.cleanup()
