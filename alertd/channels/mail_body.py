"""What the mail channels (email, resend, sendgrid) share: validated addresses and one pure rendering of a
Message into a subject, a text part and an HTML part. Producer text is data: every string is escaped for
HTML, and nothing in a subject can break out of its header line."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from pydantic import ConfigDict, Field, field_validator

from alertd.channels.base import ChannelConfig
from alertd.model import Message
from alertd.render import truncate
from alertd.secrets import Secret

MAX_RECIPIENTS = 50  # Resend's per-request cap; a pager list longer than this wants a mailing list
MAX_SUBJECT_CHARS = 200
MAX_BODY_LINES = 200
_CONTROLS = ("Cc", "Cf", "Zl", "Zp")  # CR, LF, NUL, ESC, bidi overrides, line/paragraph separators
# Deliberately narrower than RFC 5322: no quoted local parts, no comments, no IP-literal domains.
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{1,253}$)"
                         r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
# A display name needs no quoting when it has none of these; a sender name is ours to choose.
_SENDER_RE = re.compile(r'^(?:(?P<name>[^<>@",;\\]{0,100})<(?P<address>[^<>]+)>|(?P<bare>[^<>\s]+))$')


def check_address(value: str) -> str:
    address = value.strip()
    if not _ADDRESS_RE.match(address) or ".." in address or address.startswith("."):
        raise ValueError(f"{value[:80]!r} is not a valid email address")
    return address


def split_sender(value: str) -> tuple[str, str]:
    """`alerts@example.com` or `Alerts <alerts@example.com>` → (display name, address)."""
    match = _SENDER_RE.match(value.strip())
    if match is None or any(unicodedata.category(ch) in _CONTROLS for ch in value):
        raise ValueError(f"from {value[:80]!r} is not an address or 'Name <address>' on one line")
    return (match["name"] or "").strip(), check_address(match["address"] or match["bare"])


class MailConfig(ChannelConfig):
    # `from` is a Python keyword: the attribute is `sender`, the config key stays `from`.
    model_config = ConfigDict(populate_by_name=True)
    sender: str = Field(alias="from", max_length=320)
    to: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        name, address = split_sender(value)
        return f"{name} <{address}>" if name else address

    @field_validator("to")
    @classmethod
    def _to(cls, values: list[str]) -> list[str]:
        addresses = [check_address(v) for v in values]
        if len({a.lower() for a in addresses}) != len(addresses):
            raise ValueError("to lists an address twice")
        return addresses

    @property
    def sender_address(self) -> str:
        return split_sender(self.sender)[1]

    @property
    def sender_name(self) -> str:
        return split_sender(self.sender)[0]


def check_api_base(value: str) -> str:
    if not value.startswith(("https://", "http://")) or any(c in value for c in " \r\n\0?#"):
        raise ValueError("api_base must be an http(s) URL without query or fragment")
    return value.rstrip("/")


class MailApiConfig(MailConfig):
    """An HTTP mail API: a bearer key and a base URL that tests (or an EU region) can point elsewhere."""

    api_key: Secret
    api_base: str

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return check_api_base(value)


@dataclass(frozen=True, slots=True)
class MailBody:
    subject: str
    text: str
    html: str


def delivery_key(message: Message) -> str:
    """The same on every retry of one delivery and different for every other (replays included)."""
    return f"alertd-{message.event.id}-{message.delivery_id}"


def one_line(text: str) -> str:
    """Control and format characters (CR, LF, NUL, bidi overrides) become spaces; runs of space collapse."""
    cleaned = "".join(" " if unicodedata.category(ch) in _CONTROLS else ch for ch in text)
    return " ".join(cleaned.split())


def _lines(text: str) -> list[str]:
    return [one_line(line) for line in text.splitlines()[:MAX_BODY_LINES]]


def _safe_link(link: str | None) -> str | None:
    # The link comes from our own public_url, but an href is markup: only http(s) becomes one.
    if link and link.startswith(("https://", "http://")) and one_line(link) == link:
        return link
    return None


def mail_body(message: Message) -> MailBody:
    """Deterministic for a given message: a retry sends the same bytes (Resend's idempotency keys need that)."""
    event = message.event
    subject = truncate(one_line(message.title), MAX_SUBJECT_CHARS) or one_line(event.name) or "alertd"
    summary = _lines(message.summary)
    fields = [(one_line(k), one_line(v)) for k, v in message.fields]
    link = _safe_link(message.link)
    about = f"{event.severity.label} · {one_line(event.name)} · {event.id}"

    text = [subject, "", *summary, ""]
    text += [f"{key}: {value}" for key, value in fields]
    text += ["", f"View the event: {link}"] if link else []
    text += ["", "-- ", f"alertd · {about}"]

    e = html.escape
    parts = ["<!DOCTYPE html>", '<html><body style="font-family:sans-serif;line-height:1.4">',
             f'<h2 style="margin:0 0 12px">{e(subject)}</h2>',
             f"<p>{'<br>'.join(e(line) for line in summary)}</p>"]
    if fields:
        rows = "".join(f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(k)}</th><td>{e(v)}</td></tr>'
                       for k, v in fields)
        parts.append(f'<table style="border-collapse:collapse">{rows}</table>')
    if link:
        parts.append(f'<p><a href="{e(link, quote=True)}">View the event</a></p>')
    parts += [f'<p style="color:#777;font-size:12px">alertd · {e(about)}</p>', "</body></html>"]
    return MailBody(subject=subject, text="\n".join(text) + "\n", html="\n".join(parts) + "\n")
