"""The shortcuts on the ingest path (depth walk skipped for bracket-poor bodies, validated names and
harmless payload keys remembered) must refuse and redact exactly what the full checks do."""

from __future__ import annotations

from typing import Any

import pytest

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


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
async def test_an_integer_past_64_bits_is_refused_not_stored_changed(hub: Hub, number: int) -> None:
    # orjson reads it as the nearest float: 18446744073709551616 was stored as 1.8446744073709552e+19
    for body in ({"event": "deploy.big", "payload": {"id": number}},
                 [{"event": "deploy.ok"}, {"event": "deploy.big", "payload": {"ids": [1, {"n": number}]}}]):
        status, answer = await hub.call("POST", "/v1/events", body, key=PRODUCER)
        assert status == 400 and answer["error"]["code"] == "invalid_json", answer
        assert "64 bits" in answer["error"]["message"] and answer["error"]["field"] == "body"
    assert (await hub.call("GET", "/v1/admin/events"))[1]["events"] == []


async def test_integers_at_the_64_bit_edges_and_large_floats_are_kept_exactly(hub: Hub) -> None:
    payload = {"top": 2**64 - 1, "bottom": -(2**63), "big_float": 1e30, "small": 412.7}
    status, body = await hub.call("POST", "/v1/events", {"event": "deploy.edge", "payload": payload}, key=PRODUCER)
    assert status == 202, body
    _, event = await hub.call("GET", f"/v1/admin/events/{body['id']}")
    assert event["payload"] == payload
