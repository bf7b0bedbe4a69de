"""Fixtures for the mail and messaging channels: a real HTTP sender (netguard with 127.0.0.0/8 allowed),
a local aiohttp server standing in for Resend, SendGrid and Twilio, a real aiosmtpd server, a throw-away
self-signed certificate, and messages carrying hostile producer text."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alertd.channels.base import HttpSender
from alertd.model import Event, Message, Severity
from alertd.netguard import NetPolicy, make_connector

EVENT_ID = "evt_01J0000000000000000000000A"
LINK = f"https://alertd.example/ui/events/{EVENT_ID}"
HOSTILE_TITLE = "[ERROR] deploy <script>alert(1)</script>\r\nBcc: victim@evil.example\r\n\r\nforged body"
HOSTILE_SUMMARY = "Disk full on <db-1> & \"friends\"\n<a href=\"javascript:alert(1)\">click</a>\u202eexe.txt"
HOSTILE_FIELDS = (("<b>host</b>", "<img src=x onerror=alert(1)>"), ("note", "one\r\nX-Injected: yes"))


def make_message(*, delivery_id: int = 7, attempt: int = 1, title: str = HOSTILE_TITLE,
                 summary: str = HOSTILE_SUMMARY, fields: tuple[tuple[str, str], ...] = HOSTILE_FIELDS,
                 link: str | None = LINK, name: str = "deploy.failed") -> Message:
    event = Event(EVENT_ID, name, Severity.ERROR, {"summary": summary}, 1_700_000_000.0)
    return Message(event=event, delivery_id=delivery_id, attempt=attempt, title=title, summary=summary,
                   fields=fields, link=link)


@pytest.fixture
def message_factory() -> Callable[..., Message]:
    return make_message


@pytest.fixture
async def http() -> AsyncIterator[HttpSender]:
    policy = NetPolicy.from_strings(["127.0.0.0/8"])
    session = aiohttp.ClientSession(connector=make_connector(policy))
    sender = HttpSender(session, policy)
    yield sender
    await sender.close()
    await session.close()


# ------------------------------------------------------------------------------------- vendor stand-in


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list → JSON; str → text
    headers: dict[str, str] = field(default_factory=dict)


class Vendor:
    """Records every request; answers from a script (the last reply repeats)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.replies: list[Reply] = [Reply(200, {})]
        self.url = ""

    def script(self, *replies: Reply | int) -> None:
        self.replies = [r if isinstance(r, Reply) else Reply(r, {}) for r in replies]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply.body, dict | list):
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        return web.Response(status=reply.status, text=reply.body or "", headers=reply.headers)


@pytest.fixture
async def vendor() -> AsyncIterator[Vendor]:
    stand_in = Vendor()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield stand_in
    await runner.cleanup()


# ------------------------------------------------------------------------------------------- SMTP

SMTP_USER = "alertd"
SMTP_PASSWORD = "smtp-pass-Kq83nVx1Lw"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool


class Handler:
    """aiosmtpd handler: keeps what arrives; `rcpt_reply` / `data_reply` make it refuse instead."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rcpt_reply: Callable[[str], str] | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.rcpt_reply is not None:
            answer = self.rcpt_reply(address)
            if not answer.startswith("250"):
                return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                      tls, bool(session.authenticated)))
        return "250 Message accepted for delivery"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@dataclass
class SmtpServer:
    port: int
    handler: Handler


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """smtp_server(**controller_kwargs) starts a real aiosmtpd on 127.0.0.1; all stop at teardown."""
    started: list[Controller] = []

    def start(**kwargs: Any) -> SmtpServer:
        handler = Handler()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        controller.start()
        started.append(controller)
        return SmtpServer(controller.port, handler)

    yield start
    for controller in started:
        controller.stop()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def _make_certificate(folder: Path, alt_names: str) -> Certificate:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", f"subjectAltName={alt_names}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return Certificate(cert, key)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """Self-signed, for `localhost` and 127.0.0.1, made with the openssl CLI (no extra Python dependency)."""
    return _make_certificate(tmp_path_factory.mktemp("tls"), "DNS:localhost,IP:127.0.0.1")


@pytest.fixture(scope="session")
def name_only_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """Valid for the name `localhost` only: proves TLS checks the configured name, not the IP we dial."""
    return _make_certificate(tmp_path_factory.mktemp("tls-name"), "DNS:localhost")
