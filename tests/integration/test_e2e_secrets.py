"""Secrets never leave in logs or API answers; sensitive payload keys are redacted before storage."""

from __future__ import annotations

import pytest

from tests.integration.conftest import (
    E11_SECRET,
    PRODUCER_KEY,
    SECRETS,
    STANDARD_SECRET,
    Reply,
    free_port,
    route,
    webhook,
)

pytestmark = pytest.mark.e2e

HEADER_TOKEN = "hdr_e2e_token_Yc4Kp8Wm2Rz6"
URL_PASSWORD = "urlpw_e2e_Tb7Nx3Qj9Lv1"


async def test_secrets_and_keys_never_appear_in_logs_or_admin_answers(start_daemon, receiver):
    receiver.script("/std", Reply(500, b"try again"), 200)
    receiver.script("/e11", Reply(400, b"rejected"))
    closed = free_port()
    daemon = await start_daemon(
        channels=[
            webhook("std", receiver.url("/std"), signing="standard", secret=STANDARD_SECRET,
                    headers={"Authorization": f"Bearer {HEADER_TOKEN}"}),
            webhook("e11", f"http://ops:{URL_PASSWORD}@127.0.0.1:{receiver.port}/e11", signing="e11",
                    secret=E11_SECRET),
            webhook("down", f"http://ops:{URL_PASSWORD}@127.0.0.1:{closed}/hook", max_attempts=2),
        ],
        routes=[route("all", "*", ["std", "e11", "down"])],
        log={"level": "debug"})

    assert (await daemon.post_events({"event": "x"}, key=PRODUCER_KEY[:-1] + "0")).status == 401
    accepted = await daemon.post_event("deploy.failed", {"service": "api"}, severity="error")
    event = await daemon.wait_settled(accepted["id"], 3)
    states = {d["channel"]: d["state"] for d in event["deliveries"]}
    assert states == {"std": "delivered", "e11": "dead", "down": "dead"}
    # The channel really used what it must not reveal.
    assert receiver.at("/std")[0].headers["authorization"] == f"Bearer {HEADER_TOKEN}"
    assert receiver.at("/e11")[0].headers["authorization"].startswith("Basic ")

    for state in ("delivered", "dead", None):
        await daemon.all_deliveries(state=state)
    await daemon.all_events()
    await daemon.all_events(event="deploy.*")
    assert await daemon.stop() == 0

    needles = [*SECRETS, HEADER_TOKEN, URL_PASSWORD]
    logs = daemon.stderr
    assert "delivery_retrying" in logs and "delivery_dead" in logs  # the failure paths did log
    assert len(daemon.bodies) > 5
    for needle in needles:
        assert needle not in logs, f"{needle[:8]}… is in the daemon's log"
        for body in daemon.bodies:
            assert needle.encode() not in body, f"{needle[:8]}… is in a response: {body[:200]!r}"
        for request in receiver.requests:
            assert needle.encode() not in request.body


async def test_a_password_in_the_payload_is_redacted_in_storage_and_delivery(start_daemon, receiver):
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "*", ["hook"])])
    payload = {"user": "ann", "password": "hunter2-e2e-Kq8", "db": {"db_password": "pw-e2e-Zx3"},
               "accessToken": "tok-e2e-Rm5", "tokenizer": "bpe"}

    accepted = await daemon.post_event("auth.login.failed", payload)
    await daemon.wait_settled(accepted["id"], 1)
    [request] = receiver.at("/hook")

    expected = {"user": "ann", "password": "[redacted]", "db": {"db_password": "[redacted]"},
                "accessToken": "[redacted]", "tokenizer": "bpe"}
    assert request.json()["payload"] == expected
    assert (await daemon.event(accepted["id"]))["payload"] == expected
    assert [e["payload"] for e in await daemon.all_events()] == [expected]
    for value in ("hunter2-e2e-Kq8", "pw-e2e-Zx3", "tok-e2e-Rm5"):
        assert value.encode() not in request.body
        assert value not in daemon.stderr
        assert all(value.encode() not in body for body in daemon.bodies)
