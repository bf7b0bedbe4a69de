"""PagerDuty Events API v2: a `trigger` alert event to `{api_base}/v2/enqueue`. The event id is the default
dedup key, so every retry of a delivery lands on the same PagerDuty alert. Answers (PagerDuty "Response Codes
& Retry Logic"): 202 accepted; 400 invalid event, never retried; 429 and 5xx retried."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field

from alertd.channels.base import BaseChannel, ChannelConfig, HttpReply, Outcome, PermanentError, RetryableError
from alertd.channels.escape import fit
from alertd.durations import iso
from alertd.model import Message
from alertd.secrets import Secret

SUMMARY_CHARS = 1024  # payload.summary: "maximum permitted length … 1024 characters"
DEDUP_KEY_CHARS = 255
MAX_EVENT_BYTES = 512 * 1024  # "Events API payloads are limited to 512 KB"
THROTTLED_RETRY_S = 30.0  # PagerDuty suggests retrying a 429 about 30 seconds later; it sends no Retry-After


class PagerDutyConfig(ChannelConfig):
    type: Literal["pagerduty"] = "pagerduty"
    routing_key: Secret  # the integration key
    api_base: str = Field(default="https://events.pagerduty.com", pattern=r"^https?://", max_length=2048)
    source: str = Field(default="alertd", min_length=1, max_length=255)
    dedup_key: Literal["event_id", "event_name"] = "event_id"


def _summary(message: Message) -> str:
    text = message.title if message.summary in message.title else f"{message.title}: {message.summary}"
    return fit(text, SUMMARY_CHARS)


def pagerduty_event(message: Message, config: PagerDutyConfig) -> dict[str, Any]:
    event = message.event
    dedup = event.id if config.dedup_key == "event_id" else event.name
    body: dict[str, Any] = {
        "routing_key": config.routing_key.get_secret_value(),
        "event_action": "trigger",
        "dedup_key": dedup[:DEDUP_KEY_CHARS],
        "payload": {
            "summary": _summary(message),
            "source": config.source,
            "severity": event.severity.label,  # alertd's four severities are PagerDuty's four
            "timestamp": iso(event.created_at),
            "class": event.name,
            "custom_details": event.payload,  # JSON data, not markup: shown as data by PagerDuty
        },
        "client": "alertd",
    }
    if message.link:
        body["links"] = [{"href": message.link, "text": "alertd"}]
    return body


def encode_event(body: dict[str, Any]) -> bytes:
    data = orjson.dumps(body)
    if len(data) > MAX_EVENT_BYTES:  # too big to page with: page without the details than not at all
        body["payload"]["custom_details"] = {"alertd": f"payload omitted: the event was {len(data)} bytes, "
                                                       f"PagerDuty accepts {MAX_EVENT_BYTES}"}
        data = orjson.dumps(body)
    return data


class PagerDutyChannel(BaseChannel):
    type_name = "pagerduty"
    config_model = PagerDutyConfig
    default_rate = "120/m"  # Events API v2: "approximately 120 calls/minute per integration key"
    config: PagerDutyConfig

    async def send(self, message: Message) -> Outcome:
        reply = await self.post(f"{self.config.api_base.rstrip('/')}/v2/enqueue",
                                headers={"content-type": "application/json"},
                                body=encode_event(pagerduty_event(message, self.config)))
        return Outcome(status=reply.status)

    def classify(self, reply: HttpReply) -> HttpReply:
        try:
            return super().classify(reply)
        except RetryableError as exc:
            if reply.status == 429 and exc.retry_after is None:
                exc.retry_after = THROTTLED_RETRY_S
            raise
        except PermanentError as exc:
            if reply.status == 400:
                raise PermanentError(self.scrub(_invalid_event(reply.body) or str(exc)), status=400) from None
            raise


def _invalid_event(body: bytes) -> str | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    raw = answer.get("errors")
    errors: list[Any] = raw if isinstance(raw, list) else []
    parts = [str(answer.get("status") or "invalid event"), str(answer.get("message") or ""),
             *(str(error) for error in errors[:5])]
    return "HTTP 400: " + "; ".join(part for part in parts if part)
