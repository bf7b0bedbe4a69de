import pytest

from alertd.channels.base import PermanentError, RetryableError
from alertd.channels.pagerduty import PagerDutyChannel, PagerDutyConfig
from alertd.model import Severity
from alertd.render import TRUNCATION_MARKER

from .conftest import CREATED_ISO, EVENT_ID, HOSTILE, LINK, make_message

ROUTING_KEY = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3yAB"
ACCEPTED = {"status": "success", "message": "Event processed", "dedup_key": EVENT_ID}


def pagerduty(http, vendor, **extra) -> PagerDutyChannel:
    config = PagerDutyConfig(name="ops-pd", routing_key=ROUTING_KEY, api_base=vendor.url, timeout="2s", **extra)
    return PagerDutyChannel(config, http)


async def test_it_enqueues_a_trigger_event(http, vendor):
    vendor.answer(202, ACCEPTED)
    payload = {"summary": "Deploy of api failed", "env": "prod", "nested": {"a": [1, 2]}}
    message = make_message(title="[ERROR] deploy.failed", summary="Deploy of api failed", payload=payload)
    outcome = await pagerduty(http, vendor, source="ci.example").send(message)

    assert outcome.status == 202
    request = vendor.last
    assert (request.method, request.path) == ("POST", "/v2/enqueue")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": EVENT_ID,
        "payload": {
            "summary": "[ERROR] deploy.failed: Deploy of api failed",
            "source": "ci.example",
            "severity": "error",
            "timestamp": CREATED_ISO,
            "class": "deploy.failed",
            "custom_details": payload,
        },
        "client": "alertd",
        "links": [{"href": LINK, "text": "alertd"}],
    }


async def test_the_dedup_key_can_be_the_event_name_and_a_bare_title_is_not_repeated(http, vendor):
    message = make_message(title="[WARNING] disk.full", summary="disk.full", name="disk.full", link=None,
                           severity=Severity.WARNING)
    await pagerduty(http, vendor, dedup_key="event_name").send(message)
    body = vendor.last.json()
    assert body["dedup_key"] == "disk.full"
    assert (body["payload"]["summary"], body["payload"]["severity"]) == ("[WARNING] disk.full", "warning")
    assert "links" not in body


async def test_producer_text_is_sent_as_data(http, vendor):
    await pagerduty(http, vendor).send(make_message(payload={"note": HOSTILE}))
    body = vendor.last.json()
    assert body["payload"]["summary"] == f"[ERROR] deploy.failed {HOSTILE}"  # plain text; not repeated
    assert body["payload"]["custom_details"] == {"note": HOSTILE}


async def test_limits_are_kept(http, vendor):
    message = make_message(summary="s" * 5000, name="n" * 300, payload={"blob": "x" * 600_000})
    await pagerduty(http, vendor, dedup_key="event_name").send(message)
    body = vendor.last.json()
    assert len(body["payload"]["summary"]) == 1024 and body["payload"]["summary"].endswith(TRUNCATION_MARKER)
    assert len(body["dedup_key"]) == 255
    assert len(vendor.last.body) <= 512 * 1024
    assert "payload omitted" in body["payload"]["custom_details"]["alertd"]


async def test_an_invalid_event_is_permanent_with_pagerdutys_reasons(http, vendor):
    vendor.answer(400, {"status": "invalid event", "message": "Event object is invalid",
                        "errors": ["'payload.source' is missing or blank"]})
    with pytest.raises(PermanentError) as caught:
        await pagerduty(http, vendor).send(make_message())
    assert caught.value.status == 400
    assert str(caught.value) == "HTTP 400: invalid event; Event object is invalid; 'payload.source' is missing or blank"


async def test_throttling_is_retried_30_seconds_later_unless_told_otherwise(http, vendor):
    channel = pagerduty(http, vendor)
    vendor.answer(429, {"status": "throttle exceeded", "message": "Requests for this service are arriving too quickly"})
    with pytest.raises(RetryableError) as caught:
        await channel.send(make_message())
    assert (caught.value.status, caught.value.retry_after) == (429, 30.0)
    vendor.answer(429, "", Retry_After="5")
    with pytest.raises(RetryableError) as caught:
        await channel.send(make_message())
    assert caught.value.retry_after == 5.0
    vendor.answer(500, "internal error")
    with pytest.raises(RetryableError):
        await channel.send(make_message())


async def test_the_routing_key_never_appears_in_an_error(http, vendor, assert_no_secret_leaks):
    await assert_no_secret_leaks(pagerduty(http, vendor), vendor, [ROUTING_KEY])


def test_the_default_rate_is_the_events_api_limit(http):
    assert PagerDutyChannel(PagerDutyConfig(name="p", routing_key=ROUTING_KEY), http).rate == "120/m"
