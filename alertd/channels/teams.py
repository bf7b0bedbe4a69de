"""Microsoft Teams incoming webhook (Workflows or a legacy Office 365 connector): a message with one Adaptive
Card. TextBlock and FactSet text is a Markdown subset in Teams, so producer text is markdown-escaped.

Legacy connectors answer HTTP 200 even when Teams refused the message, with a body like "Webhook message
delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId …" (success is
the body "1"; Workflows answer 202 with no body). That wrapped status is classified as if it were real."""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson

from alertd.channels.base import (
    BaseChannel,
    ChannelConfig,
    HttpReply,
    Outcome,
    PermanentError,
    RetryableError,
)
from alertd.channels.escape import fit, markdown_text
from alertd.durations import iso
from alertd.model import Message, Severity
from alertd.secrets import Secret

# Adaptive Cards set no per-element limit; Teams refuses messages over ~28 KB. These keep a card far below.
TITLE_CHARS = 256
SUMMARY_CHARS = 3000
MAX_FACTS = 10
FACT_TITLE_CHARS = 100
FACT_VALUE_CHARS = 500
COLOURS = {Severity.INFO: "accent", Severity.WARNING: "warning", Severity.ERROR: "attention",
           Severity.CRITICAL: "attention"}
_WRAPPED_STATUS = re.compile(rb"returned HTTP error (\d{3})")


class TeamsConfig(ChannelConfig):
    type: Literal["teams"] = "teams"
    webhook_url: Secret  # the connector path or the Workflows `sig=` query is the credential


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def teams_payload(message: Message) -> dict[str, Any]:
    event = message.event
    body = [_text(fit(message.title, TITLE_CHARS, markdown_text), weight="Bolder", size="Medium",
                  color=COLOURS[event.severity]),
            _text(fit(message.summary, SUMMARY_CHARS, markdown_text))]
    if message.fields:
        body.append({"type": "FactSet", "facts": [
            {"title": fit(key, FACT_TITLE_CHARS, markdown_text), "value": fit(value, FACT_VALUE_CHARS, markdown_text)}
            for key, value in message.fields[:MAX_FACTS]]})
    body.append(_text(f"{event.id} · {iso(event.created_at)}", isSubtle=True, size="Small"))  # ours: evt_ + ULID
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body}
    if message.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in alertd", "url": message.link}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


class TeamsChannel(BaseChannel):
    type_name = "teams"
    config_model = TeamsConfig
    # Connector limits (Teams docs, "Rate limiting for connectors"): 4 per 1 s, 60 per 30 s, 100 per hour,
    # 1800 per day. 1/s stays inside the short windows (and Workflows' Teams action throttling); the hourly
    # cap of legacy connectors shows up as a wrapped 429, which is retried.
    default_rate = "1/s"
    config: TeamsConfig

    async def send(self, message: Message) -> Outcome:
        body = orjson.dumps(teams_payload(message))
        reply = await self.post(self.config.webhook_url.get_secret_value(),
                                headers={"content-type": "application/json"}, body=body)
        return Outcome(status=reply.status)

    def classify(self, reply: HttpReply) -> HttpReply:
        reply = super().classify(reply)
        match = _WRAPPED_STATUS.search(reply.body[:4096])
        if match is None:
            return reply
        status = int(match.group(1))
        text = " ".join(self.scrub(reply.body.decode("utf-8", "replace")).split())  # scrub, then cut
        detail = self.scrub(f"HTTP {reply.status} wrapping HTTP {status}: {text}")
        if status in (408, 425, 429) or status >= 500:
            raise RetryableError(detail, status=status)
        raise PermanentError(detail, status=status, gone=status == 410)
