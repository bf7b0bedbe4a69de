"""SendGrid v3 Mail Send through the shared HTTP helper against a local stand-in."""

from __future__ import annotations

import time

import pytest

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.sendgrid import SendGridChannel, SendGridConfig, _reset_delay

from .conftest import Reply, make_message

API_KEY = "SG.test_key.Hq4Zr8TmW2xPb6Nk"


def channel(http, vendor, **extra) -> SendGridChannel:
    config = SendGridConfig.model_validate({"name": "ops-sendgrid", "type": "sendgrid", "api_key": API_KEY,
                                            "from": "Alertd <alertd@example.net>",
                                            "to": ["oncall@example.com", "lead@example.org"],
                                            "api_base": vendor.url, "timeout": "2s", **extra})
    return SendGridChannel(config, http)


async def test_the_request_is_the_documented_v3_mail_send(http, vendor):
    vendor.script(Reply(202, ""))
    outcome = await channel(http, vendor).send(make_message())
    assert outcome.status == 202
    [seen] = vendor.seen
    assert seen.method == "POST" and seen.path == "/v3/mail/send"
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    body = seen.json()
    assert body["personalizations"] == [{"to": [{"email": "oncall@example.com"}, {"email": "lead@example.org"}]}]
    assert body["from"] == {"email": "alertd@example.net", "name": "Alertd"}
    assert body["subject"].startswith("[ERROR] deploy") and "\n" not in body["subject"]
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in body["content"][1]["value"]
    assert set(body) == {"personalizations", "from", "subject", "content"}


async def test_a_bare_sender_has_no_name(http, vendor):
    vendor.script(Reply(202, ""))
    await channel(http, vendor, **{"from": "alertd@example.net"}).send(make_message())
    assert vendor.seen[0].json()["from"] == {"email": "alertd@example.net"}


async def test_429_waits_for_the_rate_limit_reset(http, vendor):
    reset = int(time.time()) + 30
    vendor.script(Reply(429, {"errors": [{"field": None, "message": "too many requests"}]},
                        {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}))
    with pytest.raises(RetryableError) as caught:
        await channel(http, vendor).send(make_message())
    assert caught.value.status == 429
    assert caught.value.retry_after is not None and 25 <= caught.value.retry_after <= 31


async def test_a_400_is_permanent_with_sendgrids_message_and_no_key(http, vendor):
    vendor.script(Reply(400, {"errors": [{"field": "from.email", "message": f"does not match a verified Sender "
                                          f"Identity (key {API_KEY})", "help": None}]}))
    with pytest.raises(PermanentError) as caught:
        await channel(http, vendor).send(make_message())
    assert "verified Sender" in str(caught.value)
    assert API_KEY not in str(caught.value) and "****" in str(caught.value)


@pytest.mark.parametrize(("status", "kind"), [(401, PermanentError), (403, PermanentError),
                                              (500, RetryableError), (503, RetryableError)])
async def test_answers_are_classified(http, vendor, status, kind):
    vendor.script(Reply(status, {"errors": [{"message": "nope"}]}))
    with pytest.raises(kind):
        await channel(http, vendor).send(make_message())


def test_defaults():
    config = SendGridConfig.model_validate({"name": "s", "api_key": API_KEY, "from": "a@example.com",
                                            "to": ["b@example.com"]})
    assert config.api_base == "https://api.sendgrid.com"
    assert SendGridChannel.default_rate is None


@pytest.mark.parametrize("reset", ["²", "１７００００００００", "soon", "-5", "9" * 30])
def test_a_rate_limit_reset_that_is_not_plain_digits_is_ignored(reset):
    # "²" is a digit to str.isdigit and made float() raise inside the channel
    assert _reset_delay(reset, time.time()) is None
