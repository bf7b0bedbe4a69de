"""WhatsApp through Twilio's Messages API: the same request as SMS with `whatsapp:`-prefixed addresses.
Free-form text reaches a user only within 24 hours of their last message to the sender; outside that
window WhatsApp wants an approved template, and Twilio reports the failure asynchronously (63016)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from alertd.channels.twilio import TwilioChannel, TwilioConfig, check_sender

PREFIX = "whatsapp:"


class TwilioWhatsAppConfig(TwilioConfig):
    type: Literal["twilio_whatsapp"] = "twilio_whatsapp"

    @field_validator("sender", mode="before")
    @classmethod
    def _sender(cls, value: Any) -> Any:
        # written with or without the prefix; kept without it, added on the wire
        if isinstance(value, str):
            return check_sender(value.removeprefix(PREFIX), alphanumeric=False)
        return value

    @field_validator("to", mode="before")
    @classmethod
    def _to_prefix(cls, values: Any) -> Any:
        if isinstance(values, list):
            return [v.removeprefix(PREFIX) if isinstance(v, str) else v for v in values]
        return values


class TwilioWhatsAppChannel(TwilioChannel):
    type_name = "twilio_whatsapp"
    config_model = TwilioWhatsAppConfig
    address_prefix = PREFIX
    default_rate = "80/s"  # Twilio WhatsApp FAQ: 80 messages per second per WhatsApp sender by default
    config: TwilioWhatsAppConfig
