"""Twilio Programmable Messaging, shared by the SMS and WhatsApp channels: one form POST per recipient to
`/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth (account SID, auth token).

Every recipient is tried. Who Twilio accepted, and who it refused for good (21211, 21610, …), is remembered
per delivery (in memory, bounded) and not tried again: a retry texts only the rest. Any temporary failure
makes the delivery retryable; once none is left, any refusal makes it permanent, naming the refused."""

from __future__ import annotations

import base64
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from pydantic import ConfigDict, Field, field_validator

from alertd.channels.base import (
    BaseChannel,
    ChannelConfig,
    ChannelError,
    HttpReply,
    HttpSender,
    Outcome,
    PermanentError,
    RetryableError,
)
from alertd.channels.mail_body import check_api_base, one_line
from alertd.model import Message
from alertd.render import truncate
from alertd.secrets import Secret

MAX_BODY_CHARS = 1600  # Twilio's cap on Body
REMEMBERED_DELIVERIES = 1024
# https://www.twilio.com/docs/api/errors/21611: the 'From' number has too many messages queued; the fix is
# to send more slowly "so the queue can drain", so it is a wait, not a refusal
QUEUE_FULL = 21611
QUEUE_FULL_WAIT_S = 60.0
E164_RE = re.compile(r"^\+[1-9][0-9]{1,14}$")
SERVICE_SID_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")


class TwilioConfig(ChannelConfig):
    model_config = ConfigDict(populate_by_name=True)
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: Secret
    sender: str = Field(alias="from", max_length=64)  # a number, or a Messaging Service SID (MG…)
    to: list[str] = Field(min_length=1, max_length=20)
    api_base: str = "https://api.twilio.com"

    @field_validator("to")
    @classmethod
    def _to(cls, values: list[str]) -> list[str]:
        if bad := [v for v in values if not E164_RE.match(v)]:
            raise ValueError(f"{bad[0][:40]!r} is not an E.164 number such as +14155550100")
        if len(set(values)) != len(values):
            raise ValueError("to lists a number twice")
        return values

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return check_api_base(value)


def check_sender(value: str, *, alphanumeric: bool) -> str:
    if E164_RE.match(value) or SERVICE_SID_RE.match(value):
        return value
    if alphanumeric and re.fullmatch(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}", value):
        return value  # an alphanumeric sender ID, where the destination country allows one
    raise ValueError(f"from {value[:40]!r} must be an E.164 number or a Messaging Service SID (MG + 32 hex)")


def sms_text(message: Message, limit: int = MAX_BODY_CHARS) -> str:
    """Plain text; cut to fit with a visible marker, keeping the link to the event whole."""
    lines = [one_line(message.title), *(one_line(line) for line in message.summary.splitlines())]
    lines += [f"{one_line(key)}: {one_line(value)}" for key, value in message.fields]
    tail = f"\n{message.link}" if message.link else ""
    return truncate("\n".join(line for line in lines if line), limit - len(tail)) + tail


@dataclass(slots=True)
class _Progress:
    accepted: set[str] = field(default_factory=set)
    refused: dict[str, PermanentError] = field(default_factory=dict)


class TwilioChannel(BaseChannel):
    address_prefix: ClassVar[str] = ""
    config: TwilioConfig

    def __init__(self, config: TwilioConfig, http: HttpSender) -> None:
        super().__init__(config, http)
        self._progress: OrderedDict[int, _Progress] = OrderedDict()
        self._url = f"{config.api_base}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        # Basic auth built here: aiohttp 3.14 deprecates BasicAuth objects, and 3.9 lacks encode_basic_auth
        credentials = f"{config.account_sid}:{config.auth_token.get_secret_value()}".encode()
        self._headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode(), "User-Agent": "alertd"}
        self._secrets.append(base64.b64encode(credentials).decode())  # the token, spelled as an echoed header

    def form(self, to: str, body: str) -> dict[str, str]:
        sender = self.config.sender
        origin = ({"MessagingServiceSid": sender} if SERVICE_SID_RE.match(sender)
                  else {"From": f"{self.address_prefix}{sender}"})
        return {"To": f"{self.address_prefix}{to}", **origin, "Body": body}

    async def send(self, message: Message) -> Outcome:
        progress = self._progress.setdefault(message.delivery_id, _Progress())
        self._progress.move_to_end(message.delivery_id)
        while len(self._progress) > REMEMBERED_DELIVERIES:
            self._progress.popitem(last=False)
        body = sms_text(message)
        temporary: list[tuple[str, RetryableError]] = []
        for to in self.config.to:
            if to in progress.accepted or to in progress.refused:
                continue
            try:
                await self.post(self._url, data=self.form(to, body), headers=self._headers)
                progress.accepted.add(to)
            except RetryableError as exc:
                temporary.append((to, exc))
            except PermanentError as exc:
                progress.refused[to] = exc
        if temporary:
            retry_after = max((e.retry_after for _, e in temporary if e.retry_after is not None), default=None)
            raise RetryableError(self._failed(dict(temporary)), status=temporary[0][1].status, retry_after=retry_after)
        del self._progress[message.delivery_id]
        if progress.refused:
            raise PermanentError(self._failed(progress.refused), status=next(iter(progress.refused.values())).status)
        return Outcome(status=201)

    def _failed(self, errors: Mapping[str, ChannelError]) -> str:
        listed = "; ".join(f"to …{to[-4:]}: {error}" for to, error in errors.items())
        many = len(self.config.to) > 1
        return self.scrub(f"{len(errors)} of {len(self.config.to)} recipients failed: {listed}" if many else listed)

    def classify(self, reply: HttpReply) -> HttpReply:
        """Twilio's error body `{"code": 21211, "message": "Invalid 'To' Phone Number", …}` names the cause;
        the HTTP status still decides its nature (429 and 5xx retryable, other 4xx permanent)."""
        try:
            return super().classify(reply)
        except ChannelError as exc:
            error = _twilio_error(reply.body)
            if error is None:
                raise
            # scrubbed before it is cut: a cut through a secret would leave the secret's start unmasked
            detail = self.scrub(f"Twilio error {error[0]}: {self.scrub(error[1])[:200]} (HTTP {reply.status})")
            if error[0] == QUEUE_FULL:
                # the sending number's queue is full (shared with other traffic): it drains, so wait, then retry
                raise RetryableError(detail, status=exc.status, retry_after=QUEUE_FULL_WAIT_S) from None
            if isinstance(exc, RetryableError):
                raise RetryableError(detail, status=exc.status, retry_after=exc.retry_after) from None
            raise PermanentError(detail, status=exc.status) from None


def _twilio_error(body: bytes) -> tuple[int, str] | None:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    ok = isinstance(data, dict) and isinstance(data.get("code"), int)
    return (data["code"], one_line(str(data.get("message", "")))) if ok else None
