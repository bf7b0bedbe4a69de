"""What every channel type shares: its config base, its error types and one HTTP helper that decides
the common answers once (2xx success; 408/425/429/5xx, timeouts and connection failures retryable;
3xx and other 4xx permanent). A channel only adds what its vendor says differently."""

from __future__ import annotations

import asyncio
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

from alertd.channels.escape import url_query_secrets, url_secret_parts
from alertd.channels.wire import MAX_RESPONSE_BYTES, HttpReply, WireError, WirePool
from alertd.durations import parse_bounded_duration
from alertd.model import Message
from alertd.netguard import BlockedTarget, NetPolicy, redact_url, validate_url
from alertd.render import MessageTemplate, compile_template
from alertd.retry import parse_retry_after

MAX_ERROR_CHARS = 300
CHANNEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class ChannelError(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableError(ChannelError):
    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """`gone` means the receiver asked to be disabled (HTTP 410)."""

    def __init__(self, message: str, *, status: int | None = None, gone: bool = False) -> None:
        super().__init__(message, status=status)
        self.gone = gone


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None = None
    detail: str | None = None


class TemplateConfig(BaseModel):
    """Operator templates (Jinja2, sandboxed) for the message title and body. Variables: `event.id`,
    `event.name`, `event.severity`, `event.payload`, `event.created_at`, `link`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str | None = None
    body: str | None = None

    @model_validator(mode="after")
    def _compiles(self) -> TemplateConfig:
        compile_template(self.title, self.body)
        return self


class ChannelConfig(BaseModel):
    """Keys every channel accepts; each type extends it with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=CHANNEL_NAME_PATTERN)
    type: str
    timeout: float = 10.0
    concurrency: int = Field(default=8, ge=1, le=256)
    rate: str | None = None  # "N/s", "N/m", "N/h": the most this channel sends; None = no limit
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    fallback: str | None = None
    template: TemplateConfig | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_bounded_duration(value, 0.1, 300, "timeout")

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value


def rate_burst(value: str) -> float:
    """The N of "N/unit": that many may go at once before the rate applies."""
    return max(1.0, float(value.partition("/")[0]))


def parse_rate(value: str) -> float:
    """"10/s", "30/m", "100/h", "2/d" → sends per second."""
    count, _, unit = value.partition("/")
    per = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}.get(unit.strip())
    try:
        amount = float(count)
    except ValueError:
        amount = -1.0
    if per is None or not 0 < amount <= 100_000:
        raise ValueError(f"invalid rate {value[:30]!r}: use e.g. '1/s', '30/m', '100/h', '2/d'")
    # the token buckets divide by the rate: a vanishing one ("5e-324/h") would overflow to an infinite wait
    if amount / per < 1 / 86400:
        raise ValueError(f"invalid rate {value[:30]!r}: must be at least 1 per day (e.g. '1/d')")
    return amount / per


class HttpSender:
    """The one outbound HTTP helper: URL policy, no redirects, bounded response reading; over aiohttp's client,
    or over the lean one (wire.py) for a channel that asks for it. Owns that one's connections: close() them."""

    def __init__(self, session: aiohttp.ClientSession, policy: NetPolicy, wire: WirePool | None = None) -> None:
        self.session = session
        self.policy = policy
        self.wire = wire or WirePool(policy)  # the webhook's lean path (wire.py); the same outbound rules
        # validate_url is a pure function of (url, policy); a channel sends to the same URL every time.
        # Names are still checked on every connect, by the resolver (no rebinding window).
        self._valid: dict[str, URL] = {}

    async def close(self) -> None:
        """The lean client's kept-alive connections (aiohttp's session is its owner's to close)."""
        await self.wire.close()

    async def request(self, method: str, url: str, *, timeout: float, headers: Mapping[str, str] | None = None,
                      body: bytes | None = None, data: Any = None, wire: bool = False) -> HttpReply:
        """`wire`: over the lean client (wire.py) instead of aiohttp's; only for a body of bytes."""
        target = self._valid.get(url)
        if target is None:
            target = validate_url(url, self.policy)
            if len(self._valid) < 4096:
                self._valid[url] = target
        if wire and body is not None:
            async with asyncio.timeout(timeout):
                return await self.wire.request(method, target, headers or {}, body)
        async with self.session.request(
            method, target, headers=headers, data=body if body is not None else data,
            allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            payload = await _read_prefix(response, MAX_RESPONSE_BYTES)
            return HttpReply(response.status, payload, response.headers)


async def _read_prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size >= limit:
        response.close()  # an endless body must not hold the connection (or the worker)
    return b"".join(chunks)


class BaseChannel(ABC):
    type_name: ClassVar[str]
    config_model: ClassVar[type[ChannelConfig]] = ChannelConfig
    default_rate: ClassVar[str | None] = None  # the vendor's documented limit; `rate` overrides it
    # False for a type that sends the event as data and never reads the Message's title, summary, fields or
    # link: the dispatcher then skips rendering them (6 µs an attempt, on the hottest path there is)
    renders: ClassVar[bool] = True

    def __init__(self, config: ChannelConfig, http: HttpSender) -> None:
        self.config = config
        self.http = http
        self.template: MessageTemplate | None = (
            compile_template(config.template.title, config.template.body) if config.template else None)
        secrets = [v for v in _secret_values(config) if len(v) >= 4]
        # a header value like "Bearer sk_live_…" is a scheme and a credential: a receiver that echoes only the
        # credential ("invalid token sk_live_…") must see it masked too
        secrets += [part for v in secrets if " " in v.strip() for part in v.split() if len(part) >= 8]
        # a secret URL (Slack, Discord, Teams webhooks) is a credential in its path or query too:
        # mask those parts wherever they show up on their own, for every channel type at once
        for value in [v for v in secrets if v.startswith(("http://", "https://"))]:
            secrets.extend(url_secret_parts(value))
        self._urls = [v for v in (getattr(config, f) for f in type(config).model_fields)
                      if isinstance(v, str) and v.startswith(("http://", "https://"))]
        # a plain URL's query may carry a token too (a receiver echoing its request path would show it)
        for url in self._urls:
            secrets.extend(url_query_secrets(url))
        # what scrub replaces a URL with, and its redacted form: the same on every error, so made once
        self._url_forms = [(url, redact_url(url), origin_of(url)) for url in self._urls]
        self._secrets = sorted(set(secrets), key=len, reverse=True)  # longest first: a whole before its parts

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    async def send(self, message: Message) -> Outcome:
        """Deliver one message. Raise RetryableError or PermanentError; never swallow a failure."""

    @property
    def rate(self) -> str | None:
        return self.config.rate or self.default_rate

    async def post(self, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None,
                   data: Any = None, method: str = "POST", wire: bool = False) -> HttpReply:
        """Send and classify the common cases. Returns only 2xx replies."""
        started = time.monotonic()
        try:
            reply = await self.http.request(method, url, timeout=self.config.timeout, headers=headers,
                                            body=body, data=data, wire=wire)
        except BlockedTarget as exc:
            raise PermanentError(self.scrub(f"blocked by the outbound URL policy: {exc}")) from None
        except TimeoutError:
            raise RetryableError(f"timed out after {time.monotonic() - started:.1f}s") from None
        except (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError):
            raise RetryableError("TLS certificate verification failed") from None
        except WireError as exc:
            raise RetryableError(self.scrub(f"connection failed: {exc}")) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedTarget):  # the connect-time backstop of netguard
                raise PermanentError(f"blocked by the outbound URL policy: {exc.os_error}") from None
            raise RetryableError(self.scrub(f"connection failed: {exc.os_error.strerror or exc}")) from None
        except aiohttp.InvalidURL as exc:
            # e.g. aiohttp refuses legacy numeric hosts ("127.1", "2130706433") even when the policy allows
            # the address: no retry can fix the URL. The description only, never the URL (its path may be
            # the secret).
            raise PermanentError(self.scrub(f"invalid URL: {exc.description or 'aiohttp cannot request it'}")
                                 ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RetryableError(self.scrub(f"connection failed: {type(exc).__name__}: {exc}")) from None
        return self.classify(reply)

    def classify(self, reply: HttpReply) -> HttpReply:
        status = reply.status
        if 200 <= status < 300:
            return reply
        # scrubbed before it is cut: a cut through a secret would leave the secret's start unmasked
        detail = f"HTTP {status}: {_snippet(self.scrub(reply.body.decode('utf-8', 'replace')))}".rstrip(": ")
        if status in (408, 425, 429) or status >= 500:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"), time.time())
            raise RetryableError(detail, status=status, retry_after=retry_after)
        if 300 <= status < 400:
            raise PermanentError(self.scrub(f"HTTP {status}: redirect not followed"), status=status)
        raise PermanentError(detail, status=status, gone=status == 410)

    def scrub(self, text: str) -> str:
        """Strip every secret of this channel (and URL credentials) from text bound for a row or a log."""
        for secret in self._secrets:
            text = text.replace(secret, "****")
        for url, shown, origin in self._url_forms:
            # only scheme://host survives: for Slack- or Discord-style URLs the path is the secret
            text = text.replace(url, origin).replace(shown, origin)
        return text[:MAX_ERROR_CHARS]


def origin_of(url: str) -> str:
    try:
        parsed = URL(url)
        return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.explicit_port}" if parsed.explicit_port else "")
    except (ValueError, TypeError):
        return "<url>"


def _snippet(text: str) -> str:
    return " ".join(text.split())[:160]


def _secret_values(config: BaseModel) -> list[str]:
    values = []
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif isinstance(value, list | tuple):
            values.extend(v.get_secret_value() for v in value if isinstance(v, SecretStr))
        elif isinstance(value, dict):
            values.extend(v.get_secret_value() for v in value.values() if isinstance(v, SecretStr))
    return values


async def close_quietly(session: aiohttp.ClientSession) -> None:
    await session.close()
    await asyncio.sleep(0)
