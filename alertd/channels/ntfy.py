"""ntfy: publish as JSON to the server's root URL (not the topic URL), optionally with an access token.
Markdown stays off, so producer text is shown as plain text and needs no escaping; a message longer than
ntfy's 4,096 bytes would turn into an attachment, so it is cut to fit with the marker."""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
from pydantic import Field, SecretStr, field_validator

from alertd.channels.base import BaseChannel, ChannelConfig, Outcome
from alertd.channels.escape import fit, fit_bytes
from alertd.model import Message, Severity
from alertd.secrets import Secret

# ntfy "Limitations": a message can be up to 4,096 bytes; but its server reads the body with a peek whose
# "limit reached" is `read == limit`, so a message of exactly 4,096 bytes is taken for an attachment (a 400
# where attachments are off, a file where they are on). One byte less is always text.
MESSAGE_BYTES = 4095
JSON_BODY_BYTES = 8191  # a JSON publish is read up to twice the message limit: 8,192 bytes and over is a 413
TITLE_CHARS = 256  # ntfy documents no title limit; a notification title longer than this is unreadable
_TOPIC_RE = re.compile(r"^[-_A-Za-z0-9]{1,64}\Z")  # ntfy's own topic rule
PRIORITIES = {Severity.INFO: 3, Severity.WARNING: 3, Severity.ERROR: 4, Severity.CRITICAL: 5}
TAGS = {Severity.INFO: ["information_source"], Severity.WARNING: ["warning"], Severity.ERROR: ["x"],
        Severity.CRITICAL: ["rotating_light"]}  # ntfy shows tags that are emoji short codes as emojis


class NtfyConfig(ChannelConfig):
    type: Literal["ntfy"] = "ntfy"
    url: str = Field(default="https://ntfy.sh", pattern=r"^https?://", max_length=2048)
    # On a server without access control "the topic is essentially a password" (ntfy docs): kept secret.
    topic: Secret
    token: Secret | None = None  # an access token (tk_…), sent as a bearer token

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: SecretStr) -> SecretStr:
        if not _TOPIC_RE.match(value.get_secret_value()):
            raise ValueError("topic must be 1-64 letters, digits, '-' or '_'")
        return value


def ntfy_message(message: Message, limit: int = MESSAGE_BYTES) -> str:
    lines = [message.summary, *(f"{key}: {value}" for key, value in message.fields)]
    if message.link:
        lines.append(message.link)
    return fit_bytes("\n".join(lines), limit)


def ntfy_body(message: Message, topic: str) -> bytes:
    """The JSON publish, within ntfy's body limit: JSON escapes can make a message of 2 KB a body of 12 KB
    (a control character is 6 bytes), so the message is cut by what the body runs over until it fits."""
    limit = MESSAGE_BYTES
    while True:
        body = orjson.dumps(ntfy_payload(message, topic, limit))
        over = len(body) - JSON_BODY_BYTES
        if over <= 0 or limit <= 64:  # a raw byte is at least one encoded byte: one cut is almost always enough
            return body
        limit = max(64, limit - over)


def ntfy_payload(message: Message, topic: str, message_bytes: int = MESSAGE_BYTES) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "topic": topic,
        "title": fit(message.title, TITLE_CHARS),
        "message": ntfy_message(message, message_bytes),
        "priority": PRIORITIES[message.event.severity],
        "tags": TAGS[message.event.severity],
        "markdown": False,
    }
    if message.link:
        payload["click"] = message.link
    return payload


class NtfyChannel(BaseChannel):
    type_name = "ntfy"
    config_model = NtfyConfig
    # ntfy's default server limits: a burst of 60 requests, refilled at one request per 5 seconds.
    default_rate = "12/m"
    config: NtfyConfig

    async def send(self, message: Message) -> Outcome:
        headers = {"content-type": "application/json"}
        if self.config.token is not None:
            headers["authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        body = ntfy_body(message, self.config.topic.get_secret_value())
        reply = await self.post(f"{self.config.url.rstrip('/')}/", headers=headers, body=body)
        return Outcome(status=reply.status)
