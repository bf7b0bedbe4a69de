"""The shortcuts on the ingest path (depth walk skipped for bracket-poor bodies, validated names and
harmless payload keys remembered) must refuse and redact exactly what the full checks do."""

from __future__ import annotations

from typing import Any

from alertd.redact import REDACTED
from alertd.routing import valid_event_name
from tests.api.conftest import PRODUCER, Hub


def nested(levels: int) -> dict[str, Any]:
    """A payload `levels` objects deep; with the envelope around it, `levels + 1` levels."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_the_depth_limit_holds_at_its_edge_single_and_batched(hub: Hub) -> None:
    status, _ = await hub.call("POST", "/v1/events", {"event": "deploy.deep", "payload": nested(31)}, key=PRODUCER)
    assert status == 202
    status, body = await hub.call("POST", "/v1/events", {"event": "deploy.deep", "payload": nested(32)}, key=PRODUCER)
    assert status == 400 and body["error"]["field"] == "payload"
    batch = [{"event": "deploy.ok"}, {"event": "deploy.deep", "payload": {"l": [nested(30)]}}]
    status, body = await hub.call("POST", "/v1/events", batch, key=PRODUCER)
    assert status == 400 and body["error"]["field"] == "[1].payload"


async def test_brackets_inside_strings_only_make_the_check_run(hub: Hub) -> None:
    # 80 brackets in a string push the body over the threshold: the full walk runs and finds nothing
    status, _ = await hub.call("POST", "/v1/events", {"event": "deploy.text", "payload": {"log": "{[" * 40}},
                               key=PRODUCER)
    assert status == 202


async def test_a_refused_name_is_refused_every_time_and_never_remembered_as_valid(hub: Hub) -> None:
    for _ in range(3):
        status, body = await hub.call("POST", "/v1/events", {"event": "deploy.Bad"}, key=PRODUCER)
        assert status == 400 and body["error"]["field"] == "event"
    assert valid_event_name("deploy.Bad") is False


async def test_a_secret_is_redacted_after_its_siblings_are_remembered_as_harmless(hub: Hub) -> None:
    await hub.call("POST", "/v1/events", {"event": "deploy.done", "payload": {"env": "prod", "db": {"host": "h"}}},
                   key=PRODUCER)
    status, body = await hub.call("POST", "/v1/events", {
        "event": "deploy.done", "payload": {"env": "prod", "db": {"host": "h", "password": "hunter2"}}}, key=PRODUCER)
    assert status == 202
    status, stored = await hub.call("GET", f"/v1/admin/events/{body['id']}")
    assert status == 200
    assert stored["payload"] == {"env": "prod", "db": {"host": "h", "password": REDACTED}}
