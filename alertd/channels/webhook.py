"""Generic webhook: a JSON POST of the event, unsigned, Standard Webhooks-signed, or e11-signed."""

from __future__ import annotations

import re
import time
from typing import Literal

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator
from yarl import URL

from alertd.channels.base import BaseChannel, ChannelConfig, Outcome
from alertd.durations import iso
from alertd.model import Message
from alertd.secrets import Secret
from alertd.signing import decode_standard_secret, e11_headers, standard_headers

# \Z, not $: $ also matches before a trailing newline, and a name ending in one fails every delivery
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}\Z")
# Headers alertd owns: letting config override them would forge signatures or break framing.
# Every content-* is alertd's too: the body is its JSON, and a Content-Encoding would misdescribe it.
_RESERVED_HEADERS = {"host", "transfer-encoding", "connection",
                     "webhook-id", "webhook-timestamp", "webhook-signature", "x-e11-signature"}
_SCHEMES = ("http", "https")


class WebhookConfig(ChannelConfig):
    type: Literal["webhook"] = "webhook"
    url: str = Field(max_length=2048)
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    # values are secrets: extra headers are where receivers' tokens go (Authorization: Bearer …)
    headers: dict[str, Secret] = Field(default_factory=dict, max_length=32)
    signing: Literal["none", "standard", "e11"] = "none"
    secret: Secret | None = None
    previous_secrets: list[Secret] = Field(default_factory=list, max_length=4)

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in headers.items():
            value = secret.get_secret_value()
            lower = name.lower()
            if not _HEADER_NAME_RE.match(name) or lower in _RESERVED_HEADERS or lower.startswith("content-"):
                raise ValueError(f"header {name[:60]!r} is not a valid or allowed header name")
            if len(value) > 4096 or any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name[:60]!r} has an invalid value (control characters or > 4 KiB)")
        return headers

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        # Only the shape: whether the host may be reached is decided at send time, against [net] allow_private.
        # The URL itself stays out of the error: receivers' tokens often ride in it.
        try:
            parsed = URL(url)
            host = parsed.host  # decoded lazily: a bad IDNA label fails only here
        except (ValueError, TypeError):
            raise ValueError("cannot be parsed as a URL") from None
        if parsed.scheme not in _SCHEMES or not host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @model_validator(mode="after")
    def _signing_needs_secret(self) -> WebhookConfig:
        if self.signing != "none" and self.secret is None:
            raise ValueError(f"signing = {self.signing!r} needs a secret")
        if self.signing == "standard":
            for secret in [self.secret, *self.previous_secrets]:
                assert secret is not None
                decode_standard_secret(secret.get_secret_value())
        return self


def webhook_body(message: Message) -> bytes:
    event = message.event
    return orjson.dumps({
        "id": event.id,
        "event": event.name,
        "severity": event.severity.label,
        "payload": event.payload,
        "created_at": iso(event.created_at),
        **({"links": [{"label": label, "url": url} for label, url in message.actions]} if message.actions else {}),
    })


def message_id(message: Message) -> str:
    """Stable across retries of one delivery, so receivers can dedupe on it."""
    return f"msg_{message.event.id.removeprefix('evt_')}_{message.delivery_id}"


class WebhookChannel(BaseChannel):
    type_name = "webhook"
    config_model = WebhookConfig
    renders = False  # the body is the event itself (webhook_body)
    config: WebhookConfig

    def __init__(self, config: WebhookConfig, http) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, http)
        secrets = [s.get_secret_value() for s in [config.secret, *config.previous_secrets] if s is not None]
        self._standard_keys = [decode_standard_secret(s) for s in secrets] if config.signing == "standard" else []
        # the same on every attempt: built once, not per send. A configured User-Agent, in any case,
        # replaces alertd's (header names are case-insensitive: both would go out otherwise)
        configured = {k: v.get_secret_value() for k, v in config.headers.items()}
        ours = {"content-type": "application/json"}
        if not any(k.lower() == "user-agent" for k in configured):
            ours["user-agent"] = "alertd"
        self._static_headers = {**ours, **configured}

    async def send(self, message: Message) -> Outcome:
        body = webhook_body(message)
        msg_id = message_id(message)
        headers = self._static_headers.copy()
        if self.config.signing == "standard":
            headers.update(standard_headers(self._standard_keys, msg_id, int(time.time()), body))
        else:
            headers["webhook-id"] = msg_id
            if self.config.signing == "e11":
                assert self.config.secret is not None
                headers.update(e11_headers(self.config.secret.get_secret_value(), body))
        reply = await self.post(self.config.url, headers=headers, body=body, method=self.config.method, wire=True)
        return Outcome(status=reply.status)
