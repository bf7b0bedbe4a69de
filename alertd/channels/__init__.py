"""Channel registry: type name → class. Adding a channel type is one file plus one line here."""

from __future__ import annotations

from alertd.channels.base import BaseChannel, ChannelConfig, HttpSender, PermanentError, RetryableError
from alertd.channels.webhook import WebhookChannel

REGISTRY: dict[str, type[BaseChannel]] = {
    WebhookChannel.type_name: WebhookChannel,
}

__all__ = ["REGISTRY", "BaseChannel", "ChannelConfig", "HttpSender", "PermanentError", "RetryableError"]
