"""SMTP email: one multipart/alternative message (text + escaped HTML) to every recipient, in one
transaction. The SMTP host passes the same outbound policy as a URL: every address it resolves to is
checked, and we connect to a checked address (TLS still verifies, and SNI names, the configured host)."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any, Literal

import aiosmtplib
from pydantic import Field, field_validator, model_validator

from alertd.channels.base import BaseChannel, HttpSender, Outcome, PermanentError, RetryableError
from alertd.channels.mail_body import MailConfig, delivery_key, mail_body
from alertd.model import Message
from alertd.secrets import Secret

DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}


class EmailConfig(MailConfig):
    type: Literal["email"] = "email"
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:_-]+$")
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = Field(default=None, max_length=256)
    password: Secret | None = None
    verify_tls: bool = True
    tls_ca_file: str | None = None

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"tls_ca_file {value[:120]!r} is not a readable file")
        return value

    @model_validator(mode="after")
    def _auth(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.username is not None and self.security == "none":
            raise ValueError("AUTH needs security = 'starttls' or 'tls': the password would cross the wire in clear")
        return self


def header_text(text: str) -> str:
    """`text` as the header shows it, never decoded further. A string assigned to an EmailMessage header is
    parsed, and an RFC 2047 encoded-word in it (`=?utf-8?q?x=0D=0AReply-To:_…?=`, plain ASCII that one_line
    lets through) would be decoded into a real CRLF, new headers or a forged body: Python before 3.11.10
    writes that to the wire as is. An invisible zero-width space after each `=` of `=?` keeps it literal."""
    return text.replace("=?", "=\u200b?")


class EmailChannel(BaseChannel):
    type_name = "email"
    config_model = EmailConfig
    config: EmailConfig

    def __init__(self, config: EmailConfig, http: HttpSender) -> None:
        super().__init__(config, http)
        self._tls: ssl.SSLContext | None = None
        if config.security != "none":
            self._tls = ssl.create_default_context(cafile=config.tls_ca_file)
            if not config.verify_tls:
                self._tls.check_hostname, self._tls.verify_mode = False, ssl.CERT_NONE
        self._helo: str | None = None
        if config.username is not None and config.password is not None:
            # AUTH LOGIN and PLAIN send the password base64-encoded: a server echoing them must not leak it
            password = config.password.get_secret_value()
            self._secrets += [base64.b64encode(text.encode()).decode()
                              for text in (password, f"\0{config.username}\0{password}")]

    def build(self, message: Message) -> EmailMessage:
        body, config = mail_body(message), self.config
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["Subject"] = header_text(body.subject)
        mail["From"] = Address(display_name=config.sender_name, addr_spec=config.sender_address)
        mail["To"] = ", ".join(config.to)
        mail["Date"] = datetime.now(UTC)
        # stable on every retry of the delivery: readers (and Gmail) can dedupe a repeat
        mail["Message-ID"] = f"<{delivery_key(message)}@{config.sender_address.rpartition('@')[2]}>"
        mail.set_content(body.text)
        mail.add_alternative(body.html, subtype="html")
        return mail

    async def send(self, message: Message) -> Outcome:
        mail = self.build(message)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.timeout):
                if self._helo is None:
                    self._helo = await asyncio.to_thread(socket.getfqdn)  # what aiosmtplib would send, once
                sock = await self._connect()
                # aiosmtplib owns the connected socket from here and closes it with the connection.
                refused, _ = await aiosmtplib.send(mail, sender=self.config.sender_address,
                                                   recipients=self.config.to, **self._options(sock))
        except TimeoutError:
            raise RetryableError(f"timed out after {time.monotonic() - started:.1f}s") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise self._refused({e.recipient: (e.code, e.message) for e in exc.recipients}) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise self._reply_error(exc.code, exc.message) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            raise RetryableError(self.scrub(f"SMTP connection failed: {exc}")) from None
        except (aiosmtplib.SMTPException, ValueError) as exc:  # no STARTTLS/AUTH offered, unsendable address
            raise PermanentError(self.scrub(f"SMTP: {exc}")) from None
        if refused:
            # Accepted for some: a retry re-sends to all (at-least-once; the Message-ID lets readers dedupe).
            raise self._refused({r: (v.code, v.message) for r, v in refused.items()})
        return Outcome(status=250)

    def _options(self, sock: socket.socket) -> dict[str, Any]:
        config, password = self.config, self.config.password
        return {"hostname": config.host, "sock": sock, "local_hostname": self._helo, "timeout": config.timeout,
                "tls_context": self._tls, "use_tls": config.security == "tls",
                "start_tls": config.security == "starttls", "username": config.username,
                "password": password.get_secret_value() if password else None}

    async def _connect(self) -> socket.socket:
        """Resolve, check every address against the policy, connect to the first that answers."""
        host, port = self.config.host, self.config.port or DEFAULT_PORTS[self.config.security]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise RetryableError(f"cannot resolve SMTP host {host!r}: {exc.strerror}") from None
        for *_, address in infos:
            if not self.http.policy.address_allowed(str(address[0])):
                raise PermanentError(f"blocked by the outbound URL policy: SMTP host {host!r} resolves to "
                                     f"{address[0]}, which is not public and not in net.allow_private")
        error: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
                return sock
            except BaseException as exc:  # cancelled (timeout) included: the socket must not leak
                sock.close()
                if not isinstance(exc, OSError):
                    raise
                error = exc
        raise RetryableError(f"SMTP connection to {host}:{port} failed: {error.strerror if error else 'no address'}")

    def _reply_error(self, code: int, text: str) -> RetryableError | PermanentError:
        detail = self.scrub(f"SMTP {code} {' '.join(text.split())}")
        return PermanentError(detail) if 500 <= code < 600 else RetryableError(detail)

    def _refused(self, refused: dict[str, tuple[int, str]]) -> RetryableError | PermanentError:
        """Any temporary (4xx) refusal makes the whole delivery worth retrying; only 5xx everywhere is final."""
        kind = PermanentError if all(500 <= code < 600 for code, _ in refused.values()) else RetryableError
        listed = "; ".join(f"{who}: {code} {' '.join(text.split())}" for who, (code, text) in refused.items())
        total = len(self.config.to)
        return kind(self.scrub(f"SMTP refused {len(refused)} of {total} recipients ({total - len(refused)} accepted): "
                               f"{listed}"))
