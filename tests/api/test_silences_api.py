from typing import Any

import pytest

from tests.api.conftest import CONFIG_SILENCE, PRODUCER, STORM_EXTRA, Hub, config_text, running_hub

CONFIRM = {"X-Confirm-Destructive": "true"}
FREEZE = {"event": "deploy.*", "when": [{"field": "payload.env", "op": "eq", "value": "prod"}],
          "duration": "1h", "comment": "release freeze"}


async def skipped_rows(hub: Hub, event_id: str) -> list[tuple[Any, ...]]:
    status, body = await hub.call("GET", f"/v1/admin/events/{event_id}")
    assert status == 200, body
    return [(d["channel"], d["state"], d["reason"], d["reason_ref"], d["attempts"]) for d in body["deliveries"]]


async def emit(hub: Hub, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    status, body = await hub.call("POST", "/v1/events", {"event": name, "payload": payload}, key=PRODUCER)
    assert status == 202, body
    return body


async def test_a_dedup_window_leaves_suppressed_rows_pointing_at_the_delivery_that_went_out(tmp_path):
    async with running_hub(tmp_path, STORM_EXTRA) as hub:
        first = await hub.call("POST", "/v1/events", {"event": "cue.missed", "payload": {"cue_id": "c1"}})
        second = await hub.call("POST", "/v1/events", {"event": "cue.missed", "payload": {"cue_id": "c1"}})
        other = await hub.call("POST", "/v1/events", {"event": "cue.missed", "payload": {"cue_id": "c2"}})

        assert [r[0] for r in (first, second, other)] == [202, 202, 202]
        assert [r[1]["deliveries"] for r in (first, second, other)] == [1, 0, 1]
        status, shown = await hub.call("GET", f"/v1/admin/events/{first[1]['id']}")
        sent = shown["deliveries"][0]["id"]
        assert status == 200 and shown["deliveries"][0]["state"] in ("pending", "delivered")
        assert await skipped_rows(hub, second[1]["id"]) == [("hook", "skipped", "suppressed", sent, 0)]
        await hub.until(lambda: _true(len(hub.received) == 2))  # only the two that went out
        status, body = await hub.call("GET", "/v1/admin/deliveries?state=skipped")
        assert status == 200 and [d["event_id"] for d in body["deliveries"]] == [second[1]["id"]]


async def _true(value: bool) -> bool:
    return value


async def test_create_list_and_expire_a_silence(storm_hub):
    hub = storm_hub
    status, created = await hub.call("POST", "/v1/admin/silences", FREEZE)
    assert status == 201, created
    assert (created["state"], created["managed"], created["creator"], created["event"]) == (
        "active", "api", "admin", "deploy.*")
    assert created["when"] == FREEZE["when"] and created["expired_at"] is None

    muted = await emit(hub, "deploy.done", {"env": "prod"})
    loud = await emit(hub, "deploy.done", {"env": "staging"})
    assert (muted["deliveries"], loud["deliveries"]) == (0, 1)
    assert await skipped_rows(hub, muted["id"]) == [("hook", "skipped", "silenced", created["id"], 0)]

    status, listed = await hub.call("GET", "/v1/admin/silences")
    assert status == 200 and created["id"] in [s["id"] for s in listed["silences"]]

    status, body = await hub.call("DELETE", f"/v1/admin/silences/{created['id']}")
    assert status == 400 and body["error"]["code"] == "confirmation_required"
    status, expired = await hub.call("DELETE", f"/v1/admin/silences/{created['id']}", headers=CONFIRM)
    assert status == 200 and expired["state"] == "expired" and expired["expired_at"] is not None
    assert (await emit(hub, "deploy.done", {"env": "prod"}))["deliveries"] == 1

    status, listed = await hub.call("GET", "/v1/admin/silences")
    assert created["id"] not in [s["id"] for s in listed["silences"]]
    status, listed = await hub.call("GET", "/v1/admin/silences?state=expired")
    assert [s["id"] for s in listed["silences"]] == [created["id"]]
    status, again = await hub.call("DELETE", f"/v1/admin/silences/{created['id']}", headers=CONFIRM)
    assert status == 200 and again["expired_at"] == expired["expired_at"]  # expiring twice changes nothing


async def test_a_pending_silence_is_listed_as_pending_and_does_not_mute_yet(storm_hub):
    hub = storm_hub
    status, created = await hub.call("POST", "/v1/admin/silences", {
        "starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-01-02T00:00:00", "comment": "planned outage",
        "creator": "ops-oncall"})
    assert status == 201 and created["state"] == "pending" and created["creator"] == "ops-oncall"
    assert (created["starts_at"], created["ends_at"]) == ("2099-01-01T00:00:00.000Z", "2099-01-02T00:00:00.000Z")
    assert (await emit(hub, "deploy.done", {}))["deliveries"] == 1
    status, listed = await hub.call("GET", "/v1/admin/silences?state=pending")
    assert [s["id"] for s in listed["silences"]] == [created["id"]]
    status, shown = await hub.call("GET", f"/v1/admin/silences/{created['id']}")
    assert status == 200 and shown == created


async def test_a_config_silence_is_listed_mutes_and_cannot_be_expired_through_the_api(storm_hub):
    hub = storm_hub
    status, listed = await hub.call("GET", "/v1/admin/silences")
    [config] = [s for s in listed["silences"] if s["managed"] == "config"]
    assert config["event"] == "deploy.canary.*" and config["creator"] == "config" and config["id"] > 0
    muted = await emit(hub, "deploy.canary.eu", {})
    assert await skipped_rows(hub, muted["id"]) == [("hook", "skipped", "silenced", config["id"], 0)]
    status, body = await hub.call("DELETE", f"/v1/admin/silences/{config['id']}", headers=CONFIRM)
    assert status == 409 and body["error"]["code"] == "managed_by_config"


async def test_a_reload_applies_the_files_silences_and_keeps_unchanged_ones(storm_hub):
    hub = storm_hub
    status, listed = await hub.call("GET", "/v1/admin/silences")
    [before] = [s for s in listed["silences"] if s["managed"] == "config"]
    extra = STORM_EXTRA + CONFIG_SILENCE + '[[silences]]\nevent = "pr.*"\nduration = "2h"\ncomment = "ci outage"\n'
    hub.config_path.write_text(config_text(hub.config_path.parent, hub.receiver_url, extra))
    status, body = await hub.call("POST", "/v1/admin/reload")
    assert status == 200, body

    status, listed = await hub.call("GET", "/v1/admin/silences")
    config = {s["event"]: s for s in listed["silences"] if s["managed"] == "config"}
    assert config["deploy.canary.*"] == before  # same id, same window: a reload does not push it back
    assert config["pr.*"]["comment"] == "ci outage"
    assert (await emit(hub, "pr.run.failed", {}))["deliveries"] == 0

    hub.config_path.write_text(config_text(hub.config_path.parent, hub.receiver_url, STORM_EXTRA))
    assert (await hub.call("POST", "/v1/admin/reload"))[0] == 200
    status, listed = await hub.call("GET", "/v1/admin/silences")
    assert [s for s in listed["silences"] if s["managed"] == "config"] == []
    assert (await emit(hub, "pr.run.failed", {}))["deliveries"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"duration": "1h"}, "comment"),
    ({"duration": "1h", "comment": "   "}, "comment"),
    ({"comment": "x"}, "duration"),
    ({"duration": "91d", "comment": "x"}, "duration"),
    ({"duration": "1h", "starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-01-02T00:00:00Z", "comment": "x"},
     "duration"),
    ({"ends_at": "2020-01-01T00:00:00Z", "comment": "x"}, "ends_at"),
    ({"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z", "comment": "x"}, "ends_at"),
    ({"starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-06-01T00:00:00Z", "comment": "x"}, "ends_at"),
    ({"ends_at": "tomorrow", "comment": "x"}, "ends_at"),
    ({"duration": "1h", "comment": "x", "event": "Deploy"}, "event"),
    ({"duration": "1h", "comment": "x", "when": [{"field": "payload.x", "op": "nope", "value": 1}]}, "when"),
    ({"duration": "1h", "comment": "x", "any": [[{"field": "payload.x", "op": "matches", "value": "("}]]}, "any"),
    ({"duration": "1h", "comment": "x", "managed": "config"}, "managed"),
    # far-future times used to be committed, then fail to be written back: a 500, and every listing after it
    ({"duration": "2h", "starts_at": "9999-12-31T23:00:00Z", "comment": "x"}, "starts_at"),
    ({"starts_at": "9999-12-31T22:00:00Z", "ends_at": "9999-12-31T23:00:00Z", "comment": "x"}, "starts_at"),
    ({"starts_at": "1969-12-31T00:00:00Z", "duration": "1h", "comment": "x"}, "starts_at"),
])
async def test_a_bad_silence_is_a_400_naming_the_field(storm_hub, body, field):
    status, answer = await storm_hub.call("POST", "/v1/admin/silences", body)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_silence" and answer["error"]["field"] == field, answer
    status, listed = await storm_hub.call("GET", "/v1/admin/silences?state=all")
    assert status == 200 and all(x["managed"] == "config" for x in listed["silences"]), listed  # none added


async def test_bad_lookups_and_keys(storm_hub):
    hub = storm_hub
    assert (await hub.call("GET", "/v1/admin/silences?state=later"))[1]["error"]["field"] == "state"
    assert (await hub.call("DELETE", "/v1/admin/silences/9999", headers=CONFIRM))[0] == 404
    assert (await hub.call("DELETE", "/v1/admin/silences/abc", headers=CONFIRM))[0] == 404
    assert (await hub.call("POST", "/v1/admin/silences", FREEZE, key=PRODUCER))[0] == 403
    status, body = await hub.call("POST", "/v1/admin/silences", [FREEZE])
    assert status == 400 and body["error"]["code"] == "invalid_body"
