"""Discord webhook execute with one embed. Nothing can ping: `allowed_mentions: {"parse": []}`, and producer
text is markdown-escaped with `@everyone`/`@here` broken by a zero-width space. Discord's embed limits are
kept by truncating with the marker. A 429 carries `retry_after` (seconds, a float) in its JSON body."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field, field_validator

from alertd.channels.base import BaseChannel, ChannelConfig, HttpReply, Outcome, RetryableError
from alertd.channels.escape import ZERO_WIDTH_SPACE, discord_text, fit
from alertd.durations import iso
from alertd.model import Message, Severity
from alertd.retry import MAX_RETRY_AFTER_S
from alertd.secrets import Secret

# Discord embed limits (docs: Channel > Embed Limits): title 256, description 4096, 25 fields of name 256 /
# value 1024, footer 2048, and 6000 characters across all of them.
TITLE_CHARS = 256
DESCRIPTION_CHARS = 4096
MAX_FIELDS = 25
FIELD_NAME_CHARS = 256
FIELD_VALUE_CHARS = 1024
EMBED_TOTAL_CHARS = 6000
MIN_DESCRIPTION_CHARS = 256  # fields are dropped before the summary shrinks below this
COLOURS = {Severity.INFO: 0x3498DB, Severity.WARNING: 0xF1C40F, Severity.ERROR: 0xE67E22,
           Severity.CRITICAL: 0xE74C3C}


class DiscordConfig(ChannelConfig):
    type: Literal["discord"] = "discord"
    webhook_url: Secret  # /api/webhooks/{id}/{token}: the path is the credential
    username: str | None = Field(default=None, min_length=1, max_length=80)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and any(word in value.lower() for word in ("discord", "clyde")):
            raise ValueError("Discord refuses webhook usernames containing 'discord' or 'clyde'")
        return value


def _fields(message: Message, room: int) -> list[dict[str, Any]]:
    # Discord refuses an empty field name or value: a zero-width space stands in.
    fields: list[dict[str, Any]] = [
        {"name": fit(key, FIELD_NAME_CHARS, discord_text) or ZERO_WIDTH_SPACE,
         "value": fit(value, FIELD_VALUE_CHARS, discord_text) or ZERO_WIDTH_SPACE, "inline": True}
        for key, value in message.fields[:MAX_FIELDS]]
    while fields and sum(len(f["name"]) + len(f["value"]) for f in fields) > room:
        fields.pop()
    return fields


def discord_payload(message: Message, username: str | None = None) -> dict[str, Any]:
    title = fit(message.title, TITLE_CHARS, discord_text)
    footer = f"alertd · {message.event.id}"  # footers render neither markdown nor mentions: ours only
    fields = _fields(message, EMBED_TOTAL_CHARS - MIN_DESCRIPTION_CHARS - len(title) - len(footer))
    used = len(title) + len(footer) + sum(len(f["name"]) + len(f["value"]) for f in fields)
    embed: dict[str, Any] = {
        "title": title,
        "description": fit(message.summary, min(DESCRIPTION_CHARS, EMBED_TOTAL_CHARS - used), discord_text),
        "color": COLOURS[message.event.severity],
        "timestamp": iso(message.event.created_at),
        "footer": {"text": footer},
    }
    if fields:
        embed["fields"] = fields
    if message.link:
        embed["url"] = message.link
    payload: dict[str, Any] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    if username:
        payload["username"] = username
    return payload


def _retry_after(body: bytes) -> float | None:
    try:
        value = orjson.loads(body).get("retry_after")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return min(float(value), MAX_RETRY_AFTER_S)
    return None


class DiscordChannel(BaseChannel):
    type_name = "discord"
    config_model = DiscordConfig
    # Discord publishes no fixed webhook limit ("parse the rate-limit headers"); webhooks are observed to
    # allow 5 per 2 s and about 30 per minute per channel: the sustainable figure is the default.
    default_rate = "30/m"
    config: DiscordConfig

    async def send(self, message: Message) -> Outcome:
        body = orjson.dumps(discord_payload(message, self.config.username))
        reply = await self.post(self.config.webhook_url.get_secret_value(),
                                headers={"content-type": "application/json"}, body=body)
        return Outcome(status=reply.status)

    def classify(self, reply: HttpReply) -> HttpReply:
        try:
            return super().classify(reply)
        except RetryableError as exc:
            if reply.status == 429:  # the body's float beats the header's rounded seconds
                exc.retry_after = _retry_after(reply.body) or exc.retry_after
            raise
