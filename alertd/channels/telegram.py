"""Telegram Bot API `sendMessage` in HTML parse mode: our own tags (<b>, <a>) around producer text whose
`<`, `>` and `&` are entities. Telegram's JSON errors are read: `parameters.retry_after` on 429 (flood
control), and the vendor's `description` kept on permanent failures (chat not found, bot blocked, bad token)."""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
from pydantic import Field, SecretStr, field_validator

from alertd.channels.base import (
    BaseChannel,
    ChannelConfig,
    HttpReply,
    HttpSender,
    Outcome,
    PermanentError,
    RetryableError,
)
from alertd.channels.escape import fit, html_attribute, html_text
from alertd.model import Message
from alertd.retry import MAX_RETRY_AFTER_S
from alertd.secrets import Secret

MAX_TEXT_CHARS = 4096  # "1-4096 characters after entities parsing": the raw HTML is never shorter
TITLE_CHARS = 256
MIN_SUMMARY_CHARS = 512  # fields are dropped before the summary shrinks below this
_TOKEN_RE = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}\Z")
_CHANNEL_RE = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,31}\Z")
GROUP_RATE = "20/m"  # Telegram bots FAQ: no more than 20 messages per minute in one group


class TelegramConfig(ChannelConfig):
    type: Literal["telegram"] = "telegram"
    bot_token: Secret
    chat_id: int | str  # a chat id (groups and channels are negative) or "@channelusername"
    api_base: str = Field(default="https://api.telegram.org", pattern=r"^https?://", max_length=2048)

    @field_validator("bot_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN_RE.match(value.get_secret_value()):  # it becomes part of the URL path
            raise ValueError("bot_token must look like '123456789:AA…' as @BotFather issues it")
        return value

    @field_validator("chat_id")
    @classmethod
    def _chat_id(cls, value: int | str) -> int | str:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,20}", value):
            return int(value)
        if isinstance(value, str) and not _CHANNEL_RE.match(value):
            raise ValueError("chat_id must be a number or '@channelusername'")
        return value


def telegram_text(message: Message) -> str:
    head = f"<b>{fit(message.title, TITLE_CHARS, html_text)}</b>"
    facts = [f"<b>{fit(key, 64, html_text)}</b>: {fit(value, 1024, html_text)}" for key, value in message.fields]
    link = f'<a href="{html_attribute(message.link)}">Open in alertd</a>' if message.link else ""

    def compose(summary: str) -> str:
        blocks = [f"{head}\n{summary}", "\n".join(facts), link]
        return "\n\n".join(block for block in blocks if block)

    while facts and len(compose("")) > MAX_TEXT_CHARS - MIN_SUMMARY_CHARS:
        facts.pop()
    return compose(fit(message.summary, MAX_TEXT_CHARS - len(compose("")), html_text))


def _answer(body: bytes) -> dict[str, Any]:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return answer if isinstance(answer, dict) else {}


class TelegramChannel(BaseChannel):
    type_name = "telegram"
    config_model = TelegramConfig
    default_rate = "1/s"  # Telegram bots FAQ: avoid more than one message per second in a chat
    config: TelegramConfig

    def __init__(self, config: TelegramConfig, http: HttpSender) -> None:
        super().__init__(config, http)
        self._secrets.append(config.bot_token.get_secret_value().partition(":")[2])  # the secret half alone

    @property
    def rate(self) -> str | None:
        chat = self.config.chat_id
        group = isinstance(chat, str) or chat < 0
        return self.config.rate or (GROUP_RATE if group else self.default_rate)

    async def send(self, message: Message) -> Outcome:
        token = self.config.bot_token.get_secret_value()
        body = orjson.dumps({"chat_id": self.config.chat_id, "text": telegram_text(message), "parse_mode": "HTML",
                             "link_preview_options": {"is_disabled": True}})
        reply = await self.post(f"{self.config.api_base.rstrip('/')}/bot{token}/sendMessage",
                                headers={"content-type": "application/json"}, body=body)
        return Outcome(status=reply.status)

    def classify(self, reply: HttpReply) -> HttpReply:
        answer = _answer(reply.body) if reply.status >= 300 else {}
        description = answer.get("description")
        if not isinstance(description, str):
            return super().classify(reply)
        detail = self.scrub(f"HTTP {reply.status}: {description}")
        raw = answer.get("parameters")
        parameters: dict[str, Any] = raw if isinstance(raw, dict) else {}
        retry_after = parameters.get("retry_after")
        if reply.status == 429 or reply.status >= 500 or isinstance(retry_after, int):
            wait = min(float(retry_after), MAX_RETRY_AFTER_S) if isinstance(retry_after, int) else None
            raise RetryableError(detail, status=reply.status, retry_after=wait)
        if "migrate_to_chat_id" in parameters:
            detail = self.scrub(f"{detail} (the group is now the supergroup {parameters['migrate_to_chat_id']}: "
                                "set chat_id to it)")
        raise PermanentError(detail, status=reply.status)
