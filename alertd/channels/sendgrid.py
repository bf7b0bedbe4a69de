"""SendGrid v3 Mail Send: `POST /v3/mail/send` with a bearer key; one personalization holds every
recipient (they see each other, as with the email channel). SendGrid answers 202 Accepted."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson

from alertd.channels.base import BaseChannel, HttpReply, Outcome, RetryableError
from alertd.channels.mail_body import MailApiConfig, mail_body
from alertd.model import Message
from alertd.retry import MAX_RETRY_AFTER_S


class SendGridConfig(MailApiConfig):
    type: Literal["sendgrid"] = "sendgrid"
    api_base: str = "https://api.sendgrid.com"  # EU subusers: https://api.eu.sendgrid.com


class SendGridChannel(BaseChannel):
    type_name = "sendgrid"
    config_model = SendGridConfig
    # None: SendGrid documents no numeric limit for Mail Send; it answers 429 with X-RateLimit-Reset.
    default_rate = None
    config: SendGridConfig

    def payload(self, message: Message) -> dict[str, Any]:
        body = mail_body(message)
        sender: dict[str, str] = {"email": self.config.sender_address}
        if self.config.sender_name:
            sender["name"] = self.config.sender_name
        return {
            "personalizations": [{"to": [{"email": address} for address in self.config.to]}],
            "from": sender,
            "subject": body.subject,
            # text/plain must come before text/html: SendGrid rejects the other order
            "content": [{"type": "text/plain", "value": body.text}, {"type": "text/html", "value": body.html}],
        }

    async def send(self, message: Message) -> Outcome:
        headers = {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}",
                   "Content-Type": "application/json", "User-Agent": "alertd"}
        reply = await self.post(f"{self.config.api_base}/v3/mail/send", headers=headers,
                                body=orjson.dumps(self.payload(message)))
        return Outcome(status=reply.status)

    def classify(self, reply: HttpReply) -> HttpReply:
        try:
            return super().classify(reply)
        except RetryableError as exc:
            if exc.retry_after is None and reply.status == 429:
                exc.retry_after = _reset_delay(reply.headers.get("X-RateLimit-Reset"), time.time())
            raise


def _reset_delay(value: str | None, now: float) -> float | None:
    """X-RateLimit-Reset is the Unix time the window reopens."""
    if value is None or not (value.isascii() and value.strip().isdigit()) or len(value) > 20:
        return None
    return min(max(float(value) - now, 0.0), MAX_RETRY_AFTER_S)
