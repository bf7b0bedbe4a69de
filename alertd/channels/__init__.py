"""Channel registry: type name → class. Adding a channel type is one file plus one line here."""

from __future__ import annotations

from alertd.channels.base import BaseChannel, ChannelConfig, HttpSender, PermanentError, RetryableError
from alertd.channels.discord import DiscordChannel
from alertd.channels.email import EmailChannel
from alertd.channels.ntfy import NtfyChannel
from alertd.channels.pagerduty import PagerDutyChannel
from alertd.channels.resend import ResendChannel
from alertd.channels.sendgrid import SendGridChannel
from alertd.channels.slack import SlackChannel
from alertd.channels.teams import TeamsChannel
from alertd.channels.telegram import TelegramChannel
from alertd.channels.twilio_sms import TwilioSmsChannel
from alertd.channels.twilio_whatsapp import TwilioWhatsAppChannel
from alertd.channels.webhook import WebhookChannel

REGISTRY: dict[str, type[BaseChannel]] = {
    channel.type_name: channel
    for channel in (
        WebhookChannel, EmailChannel, ResendChannel, SendGridChannel, SlackChannel, DiscordChannel,
        TelegramChannel, TeamsChannel, NtfyChannel, PagerDutyChannel, TwilioSmsChannel, TwilioWhatsAppChannel,
    )
}

__all__ = ["REGISTRY", "BaseChannel", "ChannelConfig", "HttpSender", "PermanentError", "RetryableError"]
