"""Slack incoming webhook with Block Kit: a header block, then a severity-coloured attachment holding the
summary, the fields and a context line. Producer text only ever goes into plain_text objects (no formatting)
with Slack's control characters escaped (no `<!channel>`, no `<@U…>`, no links).

Slack answers errors as plain text (400 invalid_payload, 403 invalid_token / action_prohibited, 404
no_service / channel_not_found, 410 channel_is_archived, 429 with Retry-After): the shared classification
keeps that text and marks 410 as gone, so nothing is overridden here."""

from __future__ import annotations

from typing import Any, Literal

import orjson

from alertd.channels.base import BaseChannel, ChannelConfig, Outcome
from alertd.channels.escape import fit, slack_text
from alertd.durations import iso
from alertd.model import Message, Severity
from alertd.secrets import Secret

# Block Kit limits (docs.slack.dev/reference/block-kit/blocks): header text 150, section text 3000,
# at most 10 section fields of 2000 each, at most 50 blocks (we send 4 at most).
HEADER_CHARS = 150
SECTION_CHARS = 3000
MAX_FIELDS = 10
FIELD_CHARS = 2000
FALLBACK_CHARS = 3000  # the notification text; Slack itself truncates `text` past 40,000
COLOURS = {Severity.INFO: "#439fe0", Severity.WARNING: "#daa038", Severity.ERROR: "#e01e5a",
           Severity.CRITICAL: "#8b0000"}


class SlackConfig(ChannelConfig):
    type: Literal["slack"] = "slack"
    webhook_url: Secret  # the path is the credential


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": False}


def _context(message: Message) -> str:
    parts = [f"Event {slack_text(message.event.id)}"]
    created = iso(message.event.created_at)
    if created:
        parts.append(created)
    if message.link:
        # Our own link (public_url + event id), in Slack's <url|text> syntax; `|` would end the URL part.
        parts.append(f"<{slack_text(message.link).replace('|', '%7C')}|Open in alertd>")
    return " · ".join(parts)


def _headline(message: Message) -> str:
    return message.title if message.summary in message.title else f"{message.title}: {message.summary}"


def slack_payload(message: Message) -> dict[str, Any]:
    details: list[dict[str, Any]] = [
        {"type": "section", "text": _plain(fit(message.summary, SECTION_CHARS, slack_text))}]
    if message.fields:
        details.append({"type": "section", "fields": [
            _plain(fit(f"{key}: {value}", FIELD_CHARS, slack_text)) for key, value in message.fields[:MAX_FIELDS]]})
    details.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(message)}]})
    return {
        # With top-level blocks, `text` is only the notification/fallback text; it is parsed, so escaped too.
        "text": fit(_headline(message), FALLBACK_CHARS, slack_text),
        "blocks": [{"type": "header", "text": _plain(fit(message.title, HEADER_CHARS, slack_text))}],
        "attachments": [{"color": COLOURS[message.event.severity], "blocks": details}],
        "unfurl_links": False,
        "unfurl_media": False,
    }


class SlackChannel(BaseChannel):
    type_name = "slack"
    config_model = SlackConfig
    default_rate = "1/s"  # Slack rate limits: "Posting messages: 1 per second", short bursts allowed
    config: SlackConfig

    async def send(self, message: Message) -> Outcome:
        body = orjson.dumps(slack_payload(message))
        reply = await self.post(self.config.webhook_url.get_secret_value(),
                                headers={"content-type": "application/json"}, body=body)
        return Outcome(status=reply.status)
