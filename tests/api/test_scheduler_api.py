"""Checks and outcomes through the daemon, with a manual clock: time moves only when a test moves it."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from alertd.clock import ManualClock
from alertd.config import load_config
from alertd.daemon import Daemon
from tests.api.conftest import PRODUCER, Hub, config_text, start_receiver

CHECKS = """
[[routes]]
name = "scheduler"
match = "alertd.*"
channels = ["hook"]
[[checks]]
name = "pr.nightly"
period = "1h"
grace = "5m"
failure_threshold = 2
max_runtime = "30m"
"""


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Hub, ManualClock, list]]:
    received: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response()

    runner, url = await start_receiver(receive)
    path = tmp_path / "alertd.toml"
    path.write_text(config_text(tmp_path, url, CHECKS))
    clock = ManualClock()
    holder: dict[str, Daemon] = {}

    async def start() -> Hub:
        holder["daemon"] = Daemon(load_config(path), clock=clock)
        await holder["daemon"].start()
        hub = Hub(holder["daemon"], session, received, url, path)
        hub.restart = start  # type: ignore[attr-defined]
        return hub

    async with aiohttp.ClientSession() as session:
        yield await start(), clock, received
        await holder["daemon"].stop()
    await runner.cleanup()


async def events_named(hub: Hub, name: str) -> list[dict]:
    _, body = await hub.call("GET", f"/v1/admin/events?event={name}")
    return body["events"]


async def wait_events(hub: Hub, name: str, count: int) -> list[dict]:
    for _ in range(200):
        found = await events_named(hub, name)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} {name} events, saw {len(await events_named(hub, name))}")


async def ping(hub: Hub, signal: str = "ping", name: str = "pr.nightly", body: bytes | None = None) -> tuple:
    async with hub.session.post(f"{hub.base}/v1/checks/{name}/{signal}", data=body,
                                headers={"x-api-key": PRODUCER}) as response:
        return response.status, await response.json()


async def test_a_check_goes_up_down_and_up_again_with_events(clocked):
    hub, clock, _ = clocked
    status, body = await ping(hub)
    assert status == 202 and body["state"] == "up"
    clock.advance(3600 + 299)
    await asyncio.sleep(0.05)
    assert await events_named(hub, "alertd.check.down") == []
    clock.advance(2)
    [down] = await wait_events(hub, "alertd.check.down", 1)
    assert down["payload"]["check"] == "pr.nightly" and down["severity"] == "error"
    _, check = await hub.call("GET", "/v1/admin/checks/pr.nightly")
    assert check["state"] == "down" and check["pings"][0]["kind"] == "success"
    await ping(hub)
    [up] = await wait_events(hub, "alertd.check.up", 1)
    assert up["severity"] == "info"
    clock.advance(10 * 3600)
    await wait_events(hub, "alertd.check.down", 2)


async def test_failures_reach_the_threshold_and_an_exit_status_counts(clocked):
    hub, _, _ = clocked
    await ping(hub, "fail")
    assert await events_named(hub, "alertd.check.failing") == []
    status, _ = await ping(hub, "3")
    assert status == 202
    await wait_events(hub, "alertd.check.failing", 1)
    await ping(hub, "0")
    _, check = await hub.call("GET", "/v1/admin/checks/pr.nightly")
    assert check["fail_streak"] == 0 and check["pings"][0]["exit_status"] == 0


async def test_a_run_that_overruns_max_runtime_alerts(clocked):
    hub, clock, _ = clocked
    await ping(hub, "start")
    clock.advance(1801)
    await wait_events(hub, "alertd.check.runtime_exceeded", 1)


async def test_a_paused_check_does_not_go_down(clocked):
    hub, clock, _ = clocked
    await ping(hub)
    _, body = await hub.call("POST", "/v1/admin/checks/pr.nightly/pause")
    assert body["state"] == "paused"
    clock.advance(5 * 3600)
    await asyncio.sleep(0.05)
    assert await events_named(hub, "alertd.check.down") == []
    _, body = await hub.call("POST", "/v1/admin/checks/pr.nightly/resume")
    assert body["state"] == "new"


async def test_a_restart_mid_period_keeps_the_deadline_and_a_missed_one_fires_once_at_start(clocked):
    hub, clock, _ = clocked
    await ping(hub)
    await hub.daemon.stop()
    clock.advance(1800)
    hub = await hub.restart()
    _, check = await hub.call("GET", "/v1/admin/checks/pr.nightly")
    assert check["state"] == "up"
    await hub.daemon.stop()
    clock.advance(3 * 3600)  # the deadline passes while alertd is down
    hub = await hub.restart()
    await wait_events(hub, "alertd.check.down", 1)
    await hub.daemon.stop()
    hub = await hub.restart()
    await asyncio.sleep(0.1)
    assert len(await events_named(hub, "alertd.check.down")) == 1


async def test_pings_are_scoped_like_event_names_and_bodies_are_limited_and_redacted(clocked):
    hub, _, _ = clocked
    _, created = await hub.call("POST", "/v1/admin/checks", {"name": "other.job", "period": "1h"})
    assert created["managed"] == "api"
    status, _body = await ping(hub, name="other.job")
    assert status == 403
    assert (await ping(hub, name="pr.unknown"))[0] == 404
    assert (await ping(hub, "reboot"))[0] == 404
    assert (await ping(hub, "256"))[0] == 404
    for status_text in ("²", "٣", "１"):  # digits to str.isdigit; "²" made int() fail: a 500
        assert (await ping(hub, status_text))[0] == 404
    assert (await ping(hub, body=b"x" * 20_000))[0] == 413
    await ping(hub, body=b'{"token": "s3cret", "rows": 4}')
    _, check = await hub.call("GET", "/v1/admin/checks/pr.nightly")
    assert "s3cret" not in check["pings"][0]["body"] and '"rows":4' in check["pings"][0]["body"]


async def test_config_managed_checks_are_read_only_and_bad_checks_are_refused(clocked):
    hub, _, _ = clocked
    status, body = await hub.call("PATCH", "/v1/admin/checks/pr.nightly", {"grace": "1m"})
    assert status == 409 and body["error"]["code"] == "managed_by_config"
    status, body = await hub.call("POST", "/v1/admin/checks", {"name": "x", "cron": "99 * * * *"})
    assert status == 400 and "cron" in body["error"]["message"]


async def test_an_expectation_without_an_outcome_times_out(clocked):
    hub, clock, _ = clocked
    status, _ = await hub.call("POST", "/v1/expectations", {"key": "run-1", "within": "10m", "group": "nightly",
                                                               "payload": {"job": "etl"}}, key=PRODUCER)
    assert status == 201
    clock.advance(601)
    [timeout] = await wait_events(hub, "alertd.outcome.timeout", 1)
    assert timeout["payload"]["key"] == "run-1" and timeout["payload"]["job"] == "etl"
    status, _body = await hub.call("POST", "/v1/outcomes", {"key": "run-1", "success": True}, key=PRODUCER)
    assert status == 409


async def test_an_outcome_in_time_prevents_the_timeout_and_failures_in_a_row_alert(clocked):
    hub, clock, _ = clocked
    for n in range(3):
        await hub.call("POST", "/v1/expectations", {"key": f"run-{n}", "within": "10m", "group": "g"}, key=PRODUCER)
        status, body = await hub.call("POST", "/v1/outcomes", {"key": f"run-{n}", "success": False}, key=PRODUCER)
        assert status == 202 and body["group_fail_streak"] == n + 1
    await wait_events(hub, "alertd.outcome.consecutive_failures", 1)
    clock.advance(3600)
    await asyncio.sleep(0.05)
    assert await events_named(hub, "alertd.outcome.timeout") == []


@pytest.mark.parametrize(("body", "field"), [
    ({"key": "k"}, "deadline"),
    ({"key": "k", "within": "10m", "deadline": "2030-01-01T00:00:00Z"}, "deadline"),
    ({"key": "k", "within": "soon"}, "within"),
    ({"key": "k", "deadline": "1h"}, "deadline"),
    ({"key": "", "within": "1m"}, "key"),
    ({"key": "k" * 201, "within": "1m"}, "key"),
    ({"key": "k", "within": "1m", "payload": [1]}, "payload"),
    ({"key": "k", "within": "1m", "severity": "loud"}, "severity"),
    ({"key": "k", "within": "1m", "group": 5}, "group"),
    ({"key": "k", "deadline": "9999-12-31T23:00:00-05:00"}, "deadline"),  # was committed, then a 500
])
async def test_bad_expectations_are_refused_naming_the_field(clocked, body, field):
    hub, _, _ = clocked
    status, answer = await hub.call("POST", "/v1/expectations", body, key=PRODUCER)
    assert status == 400 and answer["error"]["field"] == field
    assert (await hub.call("POST", "/v1/expectations", {"key": "k", "within": "1m"}, key=PRODUCER))[0] == 201


async def test_only_the_key_that_expected_may_report_and_unknown_outcomes_are_404(clocked):
    hub, _, _ = clocked
    await hub.call("POST", "/v1/expectations", {"key": "mine", "within": "1h"})  # admin's
    status, _ = await hub.call("POST", "/v1/outcomes", {"key": "mine", "success": True}, key=PRODUCER)
    assert status == 403
    assert (await hub.call("POST", "/v1/outcomes", {"key": "nope", "success": True}))[0] == 404
    assert (await hub.call("POST", "/v1/outcomes", {"key": "mine", "success": "yes"}))[0] == 400
