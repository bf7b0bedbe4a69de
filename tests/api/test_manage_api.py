import asyncio

import pytest

from alertd.config import load_config
from tests.api.conftest import PRODUCER, SECRET, config_text


async def test_config_managed_channels_and_routes_are_read_only(hub):
    status, body = await hub.call("GET", "/v1/admin/channels")
    assert status == 200 and body["channels"][0]["managed"] == "config"
    assert body["channels"][0]["config"]["secret"] == "whsec_****"
    for method, path, payload in [("PATCH", "/v1/admin/channels/hook", {"timeout": "1s"}),
                                  ("DELETE", "/v1/admin/channels/hook", None),
                                  ("PATCH", "/v1/admin/routes/pr", {"priority": 1}),
                                  ("DELETE", "/v1/admin/routes/pr", None)]:
        status, body = await hub.call(method, path, payload, headers={"X-Confirm-Destructive": "true"})
        assert status == 409 and body["error"]["code"] == "managed_by_config", (method, path)


async def test_channels_and_routes_created_through_the_api_take_effect_at_once(hub):
    status, body = await hub.call("POST", "/v1/admin/channels", {
        "name": "ops", "type": "webhook", "url": f"{hub.receiver_url}/ops", "signing": "e11",
        "secret": "an-e11-secret-value-1234"})
    assert status == 201 and body["managed"] == "api" and body["config"]["secret"] == "****"
    status, body = await hub.call("POST", "/v1/admin/routes", {
        "name": "deploys", "match": "deploy.*", "channels": ["ops"],
        "when": [{"field": "payload.env", "op": "eq", "value": "prod"}]})
    assert status == 201
    status, body = await hub.call("POST", "/v1/events", {"event": "deploy.done", "payload": {"env": "prod"}},
                                  key=PRODUCER)
    assert status == 202 and body["deliveries"] == 1
    await hub.until(lambda: _async(len(hub.received) == 1))
    status, body = await hub.call("PATCH", "/v1/admin/routes/deploys", {"when": None, "min_severity": "error"})
    assert status == 200 and "when" not in body and body["min_severity"] == "error"
    status, body = await hub.call("POST", "/v1/events", {"event": "deploy.done"}, key=PRODUCER)
    assert body["deliveries"] == 0


async def _async(value):
    return value


async def test_a_channel_in_use_cannot_be_deleted_and_deletes_need_confirmation(hub):
    await hub.call("POST", "/v1/admin/channels", {"name": "x", "type": "webhook", "url": f"{hub.receiver_url}/x"})
    await hub.call("POST", "/v1/admin/routes", {"name": "rx", "match": "*", "channels": ["x"]})
    status, body = await hub.call("DELETE", "/v1/admin/channels/x")
    assert status == 400 and body["error"]["code"] == "confirmation_required"
    status, body = await hub.call("DELETE", "/v1/admin/channels/x", headers={"X-Confirm-Destructive": "true"})
    assert status == 409 and "rx" in body["error"]["message"]
    assert (await hub.call("DELETE", "/v1/admin/routes/rx", headers={"X-Confirm-Destructive": "true"}))[0] == 200
    assert (await hub.call("DELETE", "/v1/admin/channels/x", headers={"X-Confirm-Destructive": "true"}))[0] == 200
    assert (await hub.call("GET", "/v1/admin/channels/x"))[0] == 404


@pytest.mark.parametrize(("path", "body", "fragment"), [
    ("/v1/admin/channels", {"name": "Bad Name", "type": "webhook", "url": "http://127.0.0.1/"}, "name"),
    ("/v1/admin/channels", {"name": "y", "type": "pigeon"}, "unknown channel type"),
    ("/v1/admin/channels", {"name": "y", "type": "webhook", "url": "http://127.0.0.1/", "bogus": 1}, "bogus"),
    ("/v1/admin/channels", {"name": "hook", "type": "webhook", "url": "http://127.0.0.1/"}, "exists"),
    ("/v1/admin/routes", {"name": "r", "match": "a.*.b", "channels": ["hook"]}, "match"),
    ("/v1/admin/routes", {"name": "r", "match": "*", "channels": ["nope"]}, "no channel named 'nope'"),
    ("/v1/admin/routes", {"name": "r", "match": "*", "channels": ["hook"],
                          "when": [{"field": "payload.x", "op": "matches", "value": "(unclosed"}]}, "when[0]"),
    ("/v1/admin/keys", {"name": "BAD"}, "name"),
    ("/v1/admin/keys", {"name": "k", "role": "root"}, "role"),
    ("/v1/admin/keys", {"name": "k", "events": ["a.*.b"]}, "events"),
])
async def test_bad_changes_are_refused_and_change_nothing(hub, path, body, fragment):
    before = hub.daemon.runtime.live.snapshot
    status, answer = await hub.call("POST", path, body)
    assert status in (400, 409) and fragment in answer["error"]["message"], answer
    assert hub.daemon.runtime.live.snapshot is before


@pytest.mark.parametrize(("body", "field"), [
    ({"headers": {"x-a": "env:ALERTD_ADMIN_KEY"}}, "headers.x-a"),
    ({"signing": "e11", "secret": "file:/etc/hostname"}, "secret"),
    ({"signing": "standard", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      "previous_secrets": ["cred:old"]}, "previous_secrets.0"),
])
async def test_an_api_channel_cannot_read_the_daemons_environment_or_files(hub, body, field):
    # resolved, a reference would copy the daemon's environment or a file (its admin key) into a header or a
    # signature the caller points at a receiver of their choosing
    status, answer = await hub.call("POST", "/v1/admin/channels", {"name": "exf", "type": "webhook",
                                                                   "url": f"{hub.receiver_url}/exf", **body})
    assert status == 400 and answer["error"]["field"] == field, answer
    assert "only be written in the config file" in answer["error"]["message"]
    assert (await hub.call("GET", "/v1/admin/channels/exf"))[0] == 404
    assert (await hub.call("POST", "/v1/admin/channels", {"name": "exf", "type": "webhook",
                                                          "url": f"{hub.receiver_url}/exf"}))[0] == 201
    status, answer = await hub.call("PATCH", "/v1/admin/channels/exf", body)
    assert status == 400 and answer["error"]["field"] == field, answer
    assert hub.received == []


@pytest.mark.parametrize("path", ["/v1/admin/deliveries/replay", "/v1/admin/dlq/retry"])
@pytest.mark.parametrize("ids", [[2**63], [1, -(2**63)], [0], [True], ["1"], [1.0], []])
async def test_delivery_ids_past_what_sqlite_holds_or_of_the_wrong_kind_are_a_400(hub, path, ids):
    status, answer = await hub.call("POST", path, {"ids": ids}, headers={"X-Confirm-Destructive": "true"})
    assert status == 400 and answer["error"]["field"] == "ids", answer  # 2**63 was an OverflowError: a 500


async def test_a_key_is_shown_once_works_at_once_and_a_revoked_key_is_refused_at_once(hub):
    status, created = await hub.call("POST", "/v1/admin/keys", {"name": "ci", "events": ["deploy.*"]})
    assert status == 201 and created["key"].startswith("alertd_")
    key = created["key"]
    status, listed = await hub.call("GET", "/v1/admin/keys")
    assert key not in str(listed) and any(k["name"] == "ci" for k in listed["keys"])
    assert (await hub.call("POST", "/v1/events", {"event": "deploy.done"}, key=key))[0] == 202
    assert (await hub.call("POST", "/v1/events", {"event": "pr.x"}, key=key))[0] == 403
    assert (await hub.call("GET", "/v1/admin/events", key=key))[0] == 403
    status, _ = await hub.call("DELETE", "/v1/admin/keys/ci", headers={"X-Confirm-Destructive": "true"})
    assert status == 200
    assert (await hub.call("POST", "/v1/events", {"event": "deploy.done"}, key=key))[0] == 401
    assert (await hub.call("POST", "/v1/admin/keys", {"name": "ci"}))[0] == 409
    assert (await hub.call("DELETE", "/v1/admin/keys/producer", headers={"X-Confirm-Destructive": "true"}))[0] == 409


async def test_route_test_explains_every_route(hub):
    await hub.call("POST", "/v1/admin/channels", {"name": "ops", "type": "webhook", "url": f"{hub.receiver_url}/o"})
    await hub.call("POST", "/v1/admin/routes", {"name": "slow", "match": "pr.*", "channels": ["ops"],
                                                "min_severity": "warning",
                                                "when": [{"field": "payload.duration_s", "op": "gt", "value": 3600}]})
    status, body = await hub.call("POST", "/v1/admin/routes/test",
                                  {"event": "pr.run.completed", "payload": {"duration_s": 10}})
    assert status == 200 and body["channels"] == ["hook"]
    slow = next(r for r in body["routes"] if r["name"] == "slow")
    assert not slow["matched"]
    assert any("below the floor warning" in r for r in slow["reasons"])
    assert slow["conditions"][0]["actual"] == 10 and not slow["conditions"][0]["passed"]
    status, body = await hub.call("POST", "/v1/admin/routes/test", {"event": "Bad"})
    assert status == 400 and body["error"]["field"] == "event"


async def test_the_catalog_sets_default_severity_and_counts_what_it_sees(hub):
    _status, body = await hub.call("POST", "/v1/events", {"event": "pr.run.failed"}, key=PRODUCER)
    assert body["severity"] == "error"
    await hub.call("POST", "/v1/events", {"event": "pr.other"}, key=PRODUCER)
    _, catalog = await hub.call("GET", "/v1/admin/catalog")
    assert catalog["events"] == [{"name": "pr.run.failed", "default_severity": "error",
                                  "description": "a CI run failed", "seen_24h": 1}]
    assert catalog["uncatalogued"] == [{"name": "pr.other", "seen_24h": 1}]


async def test_dead_letters_are_retried_in_place_one_or_by_filter(hub):
    hub.receiver_status["code"] = 400
    ids = []
    for n in range(3):
        _, body = await hub.call("POST", "/v1/events", {"event": "pr.fail", "payload": {"n": n}}, key=PRODUCER)
        ids.append(body["id"])

    async def dead_count():
        return len((await hub.call("GET", "/v1/admin/dlq"))[1]["deliveries"])

    await hub.until(lambda: _eq(dead_count, 3))
    hub.receiver_status["code"] = 200
    dead = (await hub.call("GET", "/v1/admin/dlq"))[1]["deliveries"]
    status, body = await hub.call("POST", "/v1/admin/dlq/retry", {"ids": [dead[0]["id"]]})
    assert status == 202 and body["retried"] == 1
    await hub.until(lambda: _eq(dead_count, 2))
    status, body = await hub.call("POST", "/v1/admin/dlq/retry", {"filter": {"event": "pr.*"}})
    assert status == 400 and body["error"]["code"] == "confirmation_required"
    status, body = await hub.call("POST", "/v1/admin/dlq/retry", {"filter": {"event": "pr.*"}},
                                  headers={"X-Confirm-Destructive": "true"})
    assert status == 202 and body["retried"] == 2
    await hub.until(lambda: _eq(dead_count, 0))
    status, event = await hub.call("GET", f"/v1/admin/events/{ids[0]}")
    assert [a["outcome"] for a in event["deliveries"][0]["attempts_list"]] == ["failed", "delivered"]


async def _eq(fn, expected):
    return await fn() == expected


async def test_a_reload_with_a_broken_file_keeps_the_old_config(hub):
    snapshot = hub.daemon.runtime.live.snapshot
    hub.config_path.write_text(hub.config_path.read_text() + "\n[[routes]]\nname = \"bad\"\nmatch = \"*\"\n"
                               "channels = [\"missing\"]\n")
    status, body = await hub.call("POST", "/v1/admin/reload")
    assert status == 400 and "kept the running config" in body["error"]["message"]
    await hub.daemon.reload()  # the SIGHUP path
    assert hub.daemon.runtime.live.snapshot is snapshot
    _, body = await hub.call("POST", "/v1/events", {"event": "pr.still.routed"}, key=PRODUCER)
    assert body["deliveries"] == 1


async def test_a_reload_swaps_routes_and_channels(hub, tmp_path):
    text = config_text(tmp_path, hub.receiver_url, '[[routes]]\nname = "deploys"\nmatch = "deploy.*"\n'
                                                    'channels = ["hook"]\n')
    hub.config_path.write_text(text)
    load_config(hub.config_path)
    status, body = await hub.call("POST", "/v1/admin/reload")
    assert status == 200 and body["routes"] == 2
    _, body = await hub.call("POST", "/v1/events", {"event": "deploy.done"}, key=PRODUCER)
    assert body["deliveries"] == 1


async def test_a_reload_applies_redaction_retries_and_scheduler_settings(hub):
    # these sections were copied into long-lived parts at start: a reload said "reloaded" and kept the old ones
    text = hub.config_path.read_text().replace("max_attempts = 2", "max_attempts = 4")
    hub.config_path.write_text(text.replace("[log]", '[redact]\nkeys = ["customer_ssn"]\n'
                                            '[scheduler]\noutcome_failure_threshold = 7\nlink_ttl = "2h"\n[log]', 1))
    status, body = await hub.call("POST", "/v1/admin/reload")
    assert status == 200 and body["reloaded"], body
    runtime = hub.daemon.runtime
    assert runtime.scheduler.outcome_failure_threshold == 7 and runtime.incidents.link_ttl == 7200
    hub.receiver_status["code"] = 500
    status, body = await hub.call("POST", "/v1/events", {"event": "pr.x", "payload": {"customer_ssn": "123-45-6789"}},
                                  key=PRODUCER)
    assert status == 202, body

    async def dead() -> bool:
        _, event = await hub.call("GET", f"/v1/admin/events/{body['id']}")
        return event["deliveries"][0]["state"] == "dead"

    await hub.until(dead)
    _, event = await hub.call("GET", f"/v1/admin/events/{body['id']}")
    assert event["payload"]["customer_ssn"] == "[redacted]"
    assert len(hub.received) == 4  # the reloaded max_attempts, not the 2 it started with


async def test_a_reload_that_changes_the_log_section_is_refused(hub):
    # structlog loggers keep the configuration of their first use: a new level could only half apply
    hub.config_path.write_text(hub.config_path.read_text().replace('level = "error"', 'level = "debug"'))
    status, body = await hub.call("POST", "/v1/admin/reload")
    assert status == 400 and "[log] changed: that takes a restart" in body["error"]["message"]


async def test_a_channel_test_reports_the_outcome_without_storing_anything(hub):
    status, body = await hub.call("POST", "/v1/admin/channels/hook/test")
    assert status == 200 and body["ok"] and body["status"] == 200 and body["latency_ms"] >= 0
    hub.receiver_status["code"] = 503
    _, body = await hub.call("POST", "/v1/admin/channels/hook/test")
    assert not body["ok"] and body["retryable"] and body["status"] == 503
    assert SECRET not in str(body)
    _, events = await hub.call("GET", "/v1/admin/events")
    assert events["events"] == []
    assert (await hub.call("POST", "/v1/admin/channels/none/test"))[0] == 404


async def test_concurrent_creates_of_one_name_make_one(hub):
    results = await asyncio.gather(*(hub.call("POST", "/v1/admin/channels", {
        "name": "dup", "type": "webhook", "url": f"{hub.receiver_url}/d"}) for _ in range(10)))
    assert sorted(status for status, _ in results) == [201] + [409] * 9


async def test_a_key_over_its_rate_gets_429_with_retry_after_and_nothing_is_stored(hub):
    _, created = await hub.call("POST", "/v1/admin/keys", {"name": "slow", "events": ["deploy.*"], "rate": "3/m"})
    assert created["rate"] == "3/m"
    statuses = []
    for n in range(5):
        async with hub.session.post(f"{hub.base}/v1/events", json={"event": "deploy.done", "payload": {"n": n}},
                                    headers={"x-api-key": created["key"]}) as response:
            statuses.append(response.status)
            if response.status == 429:
                body = await response.json()
                assert body["error"]["code"] == "rate_limited" and int(response.headers["Retry-After"]) >= 1
    assert statuses == [202, 202, 202, 429, 429]
    _, events = await hub.call("GET", "/v1/admin/events")
    assert len(events["events"]) == 3
    assert (await hub.call("POST", "/v1/admin/keys", {"name": "bad", "rate": "fast"}))[0] == 400


async def test_webhook_header_values_are_secrets_masked_in_views_and_refused_back(hub):
    status, body = await hub.call("POST", "/v1/admin/channels", {
        "name": "authd", "type": "webhook", "url": f"{hub.receiver_url}/authd",
        "headers": {"Authorization": "Bearer tok-0123456789abcdef", "X-Team": "platform"}})
    assert status == 201
    assert body["config"]["headers"] == {"Authorization": "****", "X-Team": "****"}
    assert "tok-0123456789abcdef" not in str(await hub.call("GET", "/v1/admin/channels"))
    status, body = await hub.call("PATCH", "/v1/admin/channels/authd", {"headers": {"Authorization": "****"}})
    assert status == 400 and "masked" in body["error"]["message"]
