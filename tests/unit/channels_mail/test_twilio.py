"""Twilio SMS and WhatsApp through the shared HTTP helper against a local stand-in for the Messages API."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import pytest

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.twilio import MAX_BODY_CHARS, sms_text
from alertd.channels.twilio_sms import TwilioSmsChannel, TwilioSmsConfig
from alertd.channels.twilio_whatsapp import TwilioWhatsAppChannel, TwilioWhatsAppConfig
from alertd.render import TRUNCATION_MARKER

from .conftest import LINK, Reply, make_message

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-Zx81Qm4Rv"
SERVICE = "MG" + "fedcba9876543210" * 2
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
CREATED = Reply(201, {"sid": "SM" + "1" * 32, "status": "queued"})


def error(status: int, code: int, text: str) -> Reply:
    return Reply(status, {"code": code, "message": text, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                          "status": status})


def sms(http, vendor, **extra) -> TwilioSmsChannel:
    settings = {"name": "ops-sms", "type": "twilio_sms", "account_sid": SID, "auth_token": TOKEN,
                "from": "+14155550100", "to": ["+14155550111"], "api_base": vendor.url, "timeout": "2s", **extra}
    return TwilioSmsChannel(TwilioSmsConfig.model_validate(settings), http)


def form(seen) -> dict[str, str]:
    parsed = parse_qs(seen.body.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values())
    return {k: v[0] for k, v in parsed.items()}


async def test_the_request_is_the_documented_form_post(http, vendor):
    vendor.script(CREATED)
    outcome = await sms(http, vendor).send(make_message())
    assert outcome.status == 201
    [seen] = vendor.seen
    assert seen.method == "POST" and seen.path == PATH
    assert seen.headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert seen.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    fields = form(seen)
    assert set(fields) == {"To", "From", "Body"}
    assert fields["To"] == "+14155550111" and fields["From"] == "+14155550100"
    assert fields["Body"].startswith("[ERROR] deploy <script>alert(1)</script> Bcc: victim@evil.example")
    assert "\r" not in fields["Body"] and fields["Body"].endswith(LINK)


async def test_a_messaging_service_sid_goes_in_its_own_field(http, vendor):
    vendor.script(CREATED)
    await sms(http, vendor, **{"from": SERVICE}).send(make_message())
    fields = form(vendor.seen[0])
    assert fields["MessagingServiceSid"] == SERVICE and "From" not in fields


async def test_one_request_per_recipient(http, vendor):
    vendor.script(CREATED)
    await sms(http, vendor, to=["+14155550111", "+447700900123"]).send(make_message())
    assert [form(s)["To"] for s in vendor.seen] == ["+14155550111", "+447700900123"]


async def test_whatsapp_prefixes_both_addresses(http, vendor):
    vendor.script(CREATED)
    config = TwilioWhatsAppConfig.model_validate({
        "name": "ops-wa", "type": "twilio_whatsapp", "account_sid": SID, "auth_token": TOKEN,
        "from": "whatsapp:+14155238886", "to": ["+15005550006", "whatsapp:+15005550007"], "api_base": vendor.url})
    await TwilioWhatsAppChannel(config, http).send(make_message())
    assert [(form(s)["From"], form(s)["To"]) for s in vendor.seen] == [
        ("whatsapp:+14155238886", "whatsapp:+15005550006"), ("whatsapp:+14155238886", "whatsapp:+15005550007")]
    assert vendor.seen[0].path == PATH


async def test_an_over_long_body_is_cut_to_1600_keeping_the_link(http, vendor):
    vendor.script(CREATED)
    await sms(http, vendor).send(make_message(summary="x" * 5000))
    body = form(vendor.seen[0])["Body"]
    assert len(body) == MAX_BODY_CHARS
    assert TRUNCATION_MARKER in body and body.endswith("\n" + LINK)


@pytest.mark.parametrize(("reply", "code"), [
    (error(400, 21211, "Invalid 'To' Phone Number"), "21211"),
    (error(400, 21610, "Attempt to send to unsubscribed recipient"), "21610"),
    (error(400, 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
     "21408"),
    (error(401, 20003, "Authenticate"), "20003"),
])
async def test_twilio_refusals_are_permanent_with_code_and_message(http, vendor, reply, code):
    vendor.script(reply)
    with pytest.raises(PermanentError) as caught:
        await sms(http, vendor).send(make_message())
    assert f"Twilio error {code}: {reply.body['message']}"[:120] in str(caught.value)
    assert caught.value.status == reply.status


@pytest.mark.parametrize("reply", [error(429, 20429, "Too Many Requests"), Reply(500, "oops"),
                                   error(503, 20503, "Service Unavailable")])
async def test_429_and_5xx_are_retryable(http, vendor, reply):
    vendor.script(reply)
    with pytest.raises(RetryableError) as caught:
        await sms(http, vendor).send(make_message())
    assert caught.value.status == reply.status


async def test_a_full_sender_queue_is_waited_out_not_refused(http, vendor):
    # 21611: the 'From' number has too many messages queued (shared with other traffic); it drains
    vendor.script(error(400, 21611, "This 'From' number has exceeded the maximum number of queued messages"))
    with pytest.raises(RetryableError) as caught:
        await sms(http, vendor).send(make_message())
    assert "Twilio error 21611" in str(caught.value) and caught.value.retry_after == 60.0


async def test_the_auth_token_never_appears_even_when_echoed(http, vendor):
    vendor.script(error(401, 20003, f"Authenticate with {TOKEN} failed"))
    with pytest.raises(PermanentError) as caught:
        await sms(http, vendor).send(make_message())
    assert TOKEN not in str(caught.value) and "****" in str(caught.value)


async def test_a_retry_texts_only_who_did_not_get_it(http, vendor):
    hook = sms(http, vendor, to=["+14155550111", "+14155550122", "+14155550133"])
    vendor.script(CREATED, Reply(503, "busy"), CREATED, CREATED)
    with pytest.raises(RetryableError, match=r"1 of 3 recipients failed: to …0122: HTTP 503"):
        await hook.send(make_message(attempt=1))
    assert await hook.send(make_message(attempt=2))
    assert [form(s)["To"] for s in vendor.seen] == ["+14155550111", "+14155550122", "+14155550133", "+14155550122"]


async def test_a_permanent_refusal_fails_the_delivery_after_the_others_are_sent(http, vendor):
    hook = sms(http, vendor, to=["+14155550111", "+14155550122"])
    vendor.script(error(400, 21610, "Attempt to send to unsubscribed recipient"), Reply(500, "down"), CREATED)
    with pytest.raises(RetryableError):  # something temporary is left: worth another attempt
        await hook.send(make_message(attempt=1))
    with pytest.raises(PermanentError, match=r"1 of 2 recipients failed: to …0111: Twilio error 21610"):
        await hook.send(make_message(attempt=2))
    # the unsubscribed number was not tried again; the other one got exactly one message
    assert [form(s)["To"] for s in vendor.seen] == ["+14155550111", "+14155550122", "+14155550122"]


async def test_another_delivery_starts_afresh(http, vendor):
    hook = sms(http, vendor)
    vendor.script(CREATED)
    await hook.send(make_message(delivery_id=1))
    await hook.send(make_message(delivery_id=2))
    assert len(vendor.seen) == 2


def test_sms_text_is_plain_and_one_line_per_part():
    text = sms_text(make_message(), limit=MAX_BODY_CHARS)
    assert "note: one X-Injected: yes" in text and "\u202e" not in text


@pytest.mark.parametrize(("change", "complaint"), [
    ({"account_sid": "AC123"}, "account_sid"),
    ({"account_sid": "XX" + "0" * 32}, "account_sid"),
    ({"to": ["4155550111"]}, "E.164"),
    ({"to": ["+0155550111"]}, "E.164"),
    ({"to": ["+14155550111", "+14155550111"]}, "twice"),
    ({"to": []}, "at least 1"),
    ({"from": "not a number!"}, "E.164 number or a Messaging Service SID"),
    ({"from": "+1415\n5550100"}, "E.164 number or a Messaging Service SID"),
    ({"api_base": "file:///etc/passwd"}, "api_base"),
])
def test_bad_sms_config_is_refused(change, complaint):
    settings = {"name": "s", "account_sid": SID, "auth_token": TOKEN, "from": "+14155550100",
                "to": ["+14155550111"], **change}
    with pytest.raises(ValueError, match=complaint):
        TwilioSmsConfig.model_validate(settings)


def test_an_alphanumeric_sender_is_for_sms_only():
    base = {"name": "s", "account_sid": SID, "auth_token": TOKEN, "from": "ALERTD", "to": ["+14155550111"]}
    assert TwilioSmsConfig.model_validate(base).sender == "ALERTD"
    with pytest.raises(ValueError, match="Messaging Service SID"):
        TwilioWhatsAppConfig.model_validate(base)


def test_default_rates_follow_twilios_documentation():
    assert TwilioSmsChannel.default_rate == "1/s"
    assert TwilioWhatsAppChannel.default_rate == "80/s"
