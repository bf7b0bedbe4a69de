"""SMS through Twilio: plain text, at most 1600 characters, one message per number in `to`."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from alertd.channels.twilio import TwilioChannel, TwilioConfig, check_sender


class TwilioSmsConfig(TwilioConfig):
    type: Literal["twilio_sms"] = "twilio_sms"

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return check_sender(value, alphanumeric=True)


class TwilioSmsChannel(TwilioChannel):
    type_name = "twilio_sms"
    config_model = TwilioSmsConfig
    # Twilio: a US/Canada long code sends 1 message segment per second (toll-free 3, short code 100);
    # Twilio queues the excess rather than refusing it. Raise `rate` for a Messaging Service or short code.
    default_rate = "1/s"
    config: TwilioSmsConfig
