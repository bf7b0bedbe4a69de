"""Resend (resend.com): `POST /emails` with a bearer key. Every attempt of one delivery carries the same
`Idempotency-Key`, so a retry after a timeout is not a second email (Resend keeps keys for 24 hours)."""

from __future__ import annotations

from typing import Literal

import orjson

from alertd.channels.base import BaseChannel, HttpReply, Outcome, RetryableError
from alertd.channels.mail_body import MailApiConfig, delivery_key, mail_body
from alertd.model import Message


class ResendConfig(MailApiConfig):
    type: Literal["resend"] = "resend"
    api_base: str = "https://api.resend.com"


class ResendChannel(BaseChannel):
    type_name = "resend"
    config_model = ResendConfig
    default_rate = "2/s"  # Resend API reference, "Rate limit": 2 requests per second per team by default
    config: ResendConfig

    async def send(self, message: Message) -> Outcome:
        body = mail_body(message)
        payload = {"from": self.config.sender, "to": self.config.to, "subject": body.subject,
                   "text": body.text, "html": body.html}
        headers = {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}",
                   "Content-Type": "application/json", "Idempotency-Key": delivery_key(message),
                   "User-Agent": "alertd"}
        reply = await self.post(f"{self.config.api_base}/emails", headers=headers, body=orjson.dumps(payload))
        return Outcome(status=reply.status)

    def classify(self, reply: HttpReply) -> HttpReply:
        # 409 `concurrent_idempotent_requests`: the first attempt with this key is still in flight at Resend.
        # Waiting answers it; 409 `invalid_idempotent_request` (same key, other body) stays permanent.
        if reply.status == 409 and b"concurrent_idempotent_requests" in reply.body:
            raise RetryableError(self.scrub("HTTP 409: an earlier attempt is still in progress at Resend"),
                                 status=409)
        return super().classify(reply)
