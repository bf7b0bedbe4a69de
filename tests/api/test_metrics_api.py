"""GET /metrics on the in-process daemon: who may scrape, and what the counters say after real traffic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alertd.config import load_config
from alertd.daemon import Daemon
from tests.api.conftest import ADMIN, PRODUCER, Hub, config_text

TOKEN = "metrics-token-for-api-tests-0123"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(hub: Hub, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    async with hub.session.get(hub.base + "/metrics", headers=headers or {}) as response:
        await response.read()
        return response


async def samples(hub: Hub) -> Samples:
    async with hub.session.get(hub.base + "/metrics", headers={"x-api-key": ADMIN}) as response:
        assert response.status == 200
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def reconfigure(hub: Hub, tmp_path: Path, metrics_section: str) -> None:
    hub.config_path.write_text(config_text(tmp_path, hub.receiver_url, metrics_section))
    status, body = await hub.call("POST", "/v1/admin/reload")
    assert status == 200, body


async def test_an_admin_key_scrapes_the_text_format(hub: Hub) -> None:
    for headers in ({"x-api-key": ADMIN}, {"Authorization": f"Bearer {ADMIN}"}):
        async with hub.session.get(hub.base + "/metrics", headers=headers) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = await response.text()
        assert "# TYPE alertd_events_ingested_total counter" in text
        assert "process_resident_memory_bytes" in text


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"x-api-key": "not-a-key-we-know-of-at-all"}, 401),
    ({"Authorization": "Bearer not-the-metrics-token"}, 401),
    ({"x-api-key": PRODUCER}, 403),
])
async def test_anyone_else_is_refused_with_a_json_error(hub: Hub, headers: dict[str, str], status: int) -> None:
    async with hub.session.get(hub.base + "/metrics", headers=headers) as response:
        assert response.status == status
        body = await response.json()
        assert set(body) == {"error"} and body["error"]["code"] == ("unauthorized" if status == 401 else "forbidden")
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_key_that_is_not_utf8_is_refused_not_an_error(hub: Hub) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.daemon.bound_port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: alertd\r\nAuthorization: Bearer k\xff\xfe-0123456789abcdef\r\n"
                 b"Connection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b'"code":"unauthorized"' in answer


async def test_the_metrics_token_opens_it_and_a_reload_rotates_it(hub: Hub, tmp_path: Path) -> None:
    await reconfigure(hub, tmp_path, f'[metrics]\ntoken = "{TOKEN}"')
    assert (await scrape(hub, {"Authorization": f"Bearer {TOKEN}"})).status == 200
    assert (await scrape(hub, {"Authorization": f"Bearer {TOKEN}x"})).status == 401
    await reconfigure(hub, tmp_path, f'[metrics]\ntoken = "{TOKEN[::-1]}"')
    assert (await scrape(hub, {"Authorization": f"Bearer {TOKEN}"})).status == 401
    assert (await scrape(hub, {"Authorization": f"Bearer {TOKEN[::-1]}"})).status == 200


async def test_public_metrics_need_no_key(hub: Hub, tmp_path: Path) -> None:
    assert (await scrape(hub)).status == 401
    await reconfigure(hub, tmp_path, "[metrics]\npublic = true")
    assert (await scrape(hub)).status == 200


async def test_ingest_and_delivery_are_counted(hub: Hub) -> None:
    status, _ = await hub.call("POST", "/v1/events", {"event": "pr.run.failed", "payload": {"n": 1},
                                                      "idempotency_key": "run-1"}, key=PRODUCER)
    assert status == 202
    status, _ = await hub.call("POST", "/v1/events", {"event": "pr.run.failed", "idempotency_key": "run-1"},
                               key=PRODUCER)
    assert status == 200  # the duplicate
    status, _ = await hub.call("POST", "/v1/events", [{"event": "deploy.done", "severity": "info"}] * 2,
                               key=PRODUCER)
    assert status == 202

    async def delivered() -> bool:
        return value(await samples(hub), "alertd_deliveries_total", channel="hook", type="webhook",
                     outcome="delivered") == 1

    await hub.until(delivered)
    found = await samples(hub)
    assert value(found, "alertd_events_ingested_total", severity="error") == 1
    assert value(found, "alertd_events_ingested_total", severity="info") == 2
    assert value(found, "alertd_ingest_duplicates_total") == 1
    assert value(found, "alertd_ingest_latency_seconds_count") == 3
    hook = {"channel": "hook", "type": "webhook"}
    assert value(found, "alertd_delivery_attempts_total", **hook) == 1
    assert value(found, "alertd_delivery_duration_seconds_count", **hook) == 1
    assert value(found, "alertd_deliveries_total", **hook, outcome="failed") == 0  # there from the first attempt
    commits = value(found, "alertd_store_commit_seconds_count")
    assert commits is not None and commits >= 3  # three ingest requests and one attempt record, maybe together
    assert value(found, "alertd_store_commit_batch_size_count") == commits
    assert value(found, "alertd_queue_depth", severity="critical") == 0
    assert value(found, "alertd_in_flight") == 0
    assert value(found, "alertd_due_backlog") == 0


async def test_a_failing_channel_counts_retries_and_the_dead_letter(hub: Hub) -> None:
    hub.receiver_status["code"] = 500  # type: ignore[attr-defined]
    status, _ = await hub.call("POST", "/v1/events", {"event": "pr.run.failed"}, key=PRODUCER)
    assert status == 202

    async def dead() -> bool:
        return value(await samples(hub), "alertd_deliveries_total", channel="hook", type="webhook",
                     outcome="dead") == 1

    await hub.until(dead)
    found = await samples(hub)
    hook = {"channel": "hook", "type": "webhook"}
    assert {o: value(found, "alertd_deliveries_total", **hook, outcome=o) for o in ("failed", "retrying", "dead")} == {
        "failed": 2, "retrying": 1, "dead": 1}  # max_attempts = 2 in the test config
    assert value(found, "alertd_delivery_attempts_total", **hook) == 2


async def test_checks_are_counted_by_state(hub: Hub) -> None:
    status, body = await hub.call("POST", "/v1/admin/checks", {"name": "backup.nightly", "period": "1h"})
    assert status == 201, body
    found = await samples(hub)
    assert value(found, "alertd_checks", state="new") == 1
    assert value(found, "alertd_checks", state="down") == 0


@pytest.fixture
async def quiet_daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    path = tmp_path / "off.toml"
    path.write_text(config_text(tmp_path / "off", "http://127.0.0.1:9", "[metrics]\nenabled = false"))
    (tmp_path / "off").mkdir()
    daemon = Daemon(load_config(path))
    await daemon.start()
    yield daemon
    await daemon.stop()


async def test_with_metrics_off_the_path_is_not_found(hub: Hub, quiet_daemon: Daemon) -> None:
    async with hub.session.get(f"http://127.0.0.1:{quiet_daemon.bound_port}/metrics",
                               headers={"x-api-key": ADMIN}) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    assert (await scrape(hub, {"x-api-key": ADMIN})).status == 200  # two daemons, one process, own registries
