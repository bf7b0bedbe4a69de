"""Resend through the shared HTTP helper against a local stand-in: the documented request, an
Idempotency-Key stable per delivery, and Resend's answers classified."""

from __future__ import annotations

import pytest

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.resend import ResendChannel, ResendConfig

from .conftest import Reply, make_message

API_KEY = "re_test_9f8Kd2LqPz4WmXv7"


def channel(http, vendor, **extra) -> ResendChannel:
    config = ResendConfig.model_validate({"name": "ops-resend", "type": "resend", "api_key": API_KEY,
                                          "from": "Alertd <alertd@example.net>", "to": ["oncall@example.com"],
                                          "api_base": vendor.url, "timeout": "2s", **extra})
    return ResendChannel(config, http)


async def test_the_request_is_the_documented_post_to_emails(http, vendor):
    vendor.script(Reply(200, {"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}))
    outcome = await channel(http, vendor).send(make_message())
    assert outcome.status == 200
    [seen] = vendor.seen
    assert seen.method == "POST" and seen.path == "/emails"
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Idempotency-Key"] == "alertd-evt_01J0000000000000000000000A-7"
    body = seen.json()
    assert set(body) == {"from", "to", "subject", "text", "html"}
    assert body["from"] == "Alertd <alertd@example.net>" and body["to"] == ["oncall@example.com"]
    assert "\r" not in body["subject"] and "\n" not in body["subject"]
    assert "&lt;script&gt;" in body["html"] and "<script>" not in body["html"]


async def test_a_retry_sends_the_same_key_and_the_same_bytes(http, vendor):
    hook = channel(http, vendor)
    await hook.send(make_message(attempt=1))
    await hook.send(make_message(attempt=2))
    await hook.send(make_message(delivery_id=8))
    first, retry, other = vendor.seen
    assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"]
    assert first.body == retry.body  # Resend refuses one key with two different bodies
    assert other.headers["Idempotency-Key"] != first.headers["Idempotency-Key"]


async def test_429_is_retryable_with_retry_after(http, vendor):
    vendor.script(Reply(429, {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"},
                        {"Retry-After": "2"}))
    with pytest.raises(RetryableError) as caught:
        await channel(http, vendor).send(make_message())
    assert caught.value.status == 429 and caught.value.retry_after == 2.0


async def test_a_concurrent_idempotent_request_is_retried(http, vendor):
    vendor.script(Reply(409, {"statusCode": 409, "name": "concurrent_idempotent_requests",
                              "message": "Same idempotency key used while original request is still in progress"}))
    with pytest.raises(RetryableError, match="still in progress"):
        await channel(http, vendor).send(make_message())


async def test_a_validation_error_is_permanent_and_the_key_never_shown(http, vendor):
    vendor.script(Reply(422, {"statusCode": 422, "name": "validation_error",
                              "message": f"Invalid `from` field for key {API_KEY}"}))
    with pytest.raises(PermanentError) as caught:
        await channel(http, vendor).send(make_message())
    assert caught.value.status == 422
    assert API_KEY not in str(caught.value) and "****" in str(caught.value)
    assert "validation_error" in str(caught.value)


async def test_5xx_is_retryable(http, vendor):
    vendor.script(Reply(503, "upstream unavailable"))
    with pytest.raises(RetryableError):
        await channel(http, vendor).send(make_message())


def test_defaults_follow_resends_documentation():
    config = ResendConfig.model_validate({"name": "r", "api_key": API_KEY, "from": "a@example.com",
                                          "to": ["b@example.com"]})
    assert config.api_base == "https://api.resend.com"
    assert ResendChannel.default_rate == "2/s"


@pytest.mark.parametrize("api_base", ["ftp://api.resend.com", "https://api.resend.com/?x=1", "api.resend.com"])
def test_api_base_must_be_an_http_url(api_base):
    with pytest.raises(ValueError, match="api_base"):
        ResendConfig.model_validate({"name": "r", "api_key": API_KEY, "from": "a@example.com",
                                     "to": ["b@example.com"], "api_base": api_base})
