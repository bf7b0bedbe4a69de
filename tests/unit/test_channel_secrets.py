"""No channel type leaks a secret. Every registered type gets a valid config with distinctive secrets and is
pointed at a local server that fails while echoing the whole request back (path, query, every header, body)
in its answer and in an `X-Echo` header, in the places each vendor parser reads (plain text, Telegram's
`description`, PagerDuty's `message`/`errors`, Twilio's `message`, a Teams-wrapped status), and with the
secret placed where a truncation would cut it. No error text may hold a secret, a fragment of one of 8 or
more characters, or a credential the channel derives from one (a Basic or AUTH PLAIN token). The config's
repr, its JSON dump and the admin API's view must not show one either.

A new channel type fails `test_no_channel_type_leaks_a_secret` until CASES has an entry for it."""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
import uuid
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
from pydantic import SecretStr

from alertd.api.manage import _shown
from alertd.channels import REGISTRY, ChannelConfig, HttpSender
from alertd.channels.base import ChannelError
from alertd.model import Event, Message, Severity
from alertd.netguard import NetPolicy, make_connector

STATUSES = (400, 401, 429, 500, 503)
# Where a secret starts in an answer: past the cuts the channels make before scrubbing would show (error
# snippets at 160 characters, Twilio's message at 200, a Teams-wrapped body at 300), a prefix of it would leak.
LEADS = (0, 150, 190, 290)
FRAGMENT = 8
SMTP_USER = "alertd-mailer"


def marker() -> str:
    # No type name inside: every 8-character piece of a marker must be distinctive ("sendgrid" is not).
    return f"S3CR3T-{uuid.uuid4().hex[:24]}"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class Case:
    """One valid config. `secrets` are what must never show, whole or as a fragment: credential values
    and the parts of URLs that are the credential. `derived` must never show whole (encodings alertd
    puts on the wire). `travels` is False when no secret is ever sent (HMAC signing keys)."""

    label: str
    config: dict[str, Any]
    secrets: tuple[str, ...]
    derived: tuple[str, ...] = ()
    travels: bool = True

    def forbidden(self) -> set[str]:
        pieces = {s[i:i + FRAGMENT] for s in self.secrets for i in range(len(s) - FRAGMENT + 1)}
        return pieces | set(self.secrets) | set(self.derived)

    def anchors(self) -> list[str]:
        return [*self.secrets, *self.derived]


@dataclass(frozen=True)
class Target:
    url: str  # the echo server
    smtp_port: int = 0


def webhook(t: Target) -> list[Case]:
    e11, header_free, bearer, api_token = marker(), marker(), marker(), marker()
    standard = "whsec_" + base64.b64encode(marker().encode()).decode()
    return [
        Case("e11", {"url": f"{t.url}/hooks/alertd?team=ops", "signing": "e11", "secret": e11,
                     "previous_secrets": [header_free]}, (e11, header_free), travels=False),
        Case("standard", {"url": f"{t.url}/hooks/alertd", "signing": "standard", "secret": standard,
                          "method": "PUT"}, (standard,), travels=False),
        # a receiver echoing only the credential of "Bearer …" ("invalid token …") showed it unmasked
        Case("header", {"url": f"{t.url}/hooks/alertd", "headers": {"Authorization": f"Bearer {bearer}",
                                                                   "X-Api-Token": api_token}},
             (bearer, api_token)),
    ]


def mail_api(kind: str) -> Callable[[Target], list[Case]]:
    def cases(t: Target) -> list[Case]:
        key = marker()
        return [Case(kind, {"api_key": key, "api_base": t.url, "from": "Alerts <alerts@example.com>",
                            "to": ["oncall@example.com"]}, (key,))]
    return cases


def email(t: Target) -> list[Case]:
    password = marker()
    plain = base64.b64encode(f"\0{SMTP_USER}\0{password}".encode()).decode()
    return [Case("email", {"host": "127.0.0.1", "port": t.smtp_port, "security": "starttls", "verify_tls": False,
                           "username": SMTP_USER, "password": password, "from": "alerts@example.com",
                           "to": ["oncall@example.com"]},
                 (password,), (plain, base64.b64encode(password.encode()).decode()))]


def slack(t: Target) -> list[Case]:
    token = marker()
    return [Case("slack", {"webhook_url": f"{t.url}/services/T0A1B2C3D/B0E4F5G6H/{token}"}, (token,))]


def discord(t: Target) -> list[Case]:
    token = marker()
    return [Case("discord", {"webhook_url": f"{t.url}/api/webhooks/112233445566778899/{token}",
                             "username": "ops-bot"}, (token,))]


def telegram(t: Target) -> list[Case]:
    secret = marker()  # letters, digits and '-': what the token format allows after "id:"
    return [
        Case("private", {"bot_token": f"123456789:{secret}", "chat_id": 4242, "api_base": t.url}, (secret,)),
        Case("channel", {"bot_token": f"987654321:{secret}", "chat_id": "@ops_alerts", "api_base": t.url},
             (secret,)),
    ]


def teams(t: Target) -> list[Case]:
    sig, path = marker(), marker()
    return [
        Case("workflows", {"webhook_url": f"{t.url}/workflows/abc123/triggers/manual/paths/invoke"
                                          f"?api-version=2016-06-01&sv=1.0&sig={sig}"}, (sig,)),
        Case("connector", {"webhook_url": f"{t.url}/webhookb2/0a1b2c3d@e4f5/IncomingWebhook/{path}/77aa"},
             (path,)),
    ]


def ntfy(t: Target) -> list[Case]:
    topic, token = marker(), "tk_" + marker()
    return [Case("ntfy", {"url": t.url, "topic": topic, "token": token}, (topic, token))]


def pagerduty(t: Target) -> list[Case]:
    key = marker()
    return [Case("pagerduty", {"routing_key": key, "api_base": t.url, "source": "db-1"}, (key,))]


def twilio(kind: str, sender: str) -> Callable[[Target], list[Case]]:
    def cases(t: Target) -> list[Case]:
        token = marker()
        sid = "AC5EC12E7" + uuid.uuid4().hex[:25]  # valid (AC + 32 hex) and recognisable; not a secret
        return [Case(kind, {"account_sid": sid, "auth_token": token, "from": sender, "to": ["+14155550199"],
                            "api_base": t.url}, (token,), (basic(sid, token),))]
    return cases


CASES: dict[str, Callable[[Target], list[Case]]] = {
    "webhook": webhook,
    "email": email,
    "resend": mail_api("resend"),
    "sendgrid": mail_api("sendgrid"),
    "slack": slack,
    "discord": discord,
    "telegram": telegram,
    "teams": teams,
    "ntfy": ntfy,
    "pagerduty": pagerduty,
    "twilio_sms": twilio("twilio_sms", "+14155550100"),
    "twilio_whatsapp": twilio("twilio_whatsapp", "whatsapp:+14155550100"),
}


# ------------------------------------------------------------------------------------------ the echo server


@dataclass
class Answer:
    status: int = 500
    shape: str = "text"  # text | json | teams (a 200 wrapping a failure) | disconnect
    anchor: str | None = None  # start the echo at this string …
    lead: int = 0  # … after this many filler characters


@dataclass
class EchoServer:
    url: str = ""
    answer: Answer = field(default_factory=Answer)
    echoes: list[str] = field(default_factory=list)

    def text(self, echo: str) -> str:
        answer = self.answer
        start = echo.find(answer.anchor) if answer.anchor else 0
        return "x" * answer.lead + echo[max(start, 0):]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        echo = "\n".join([f"{request.method} {request.path_qs}", *(f"{k}: {v}" for k, v in request.headers.items()),
                          "", body.decode("utf-8", "replace")])
        self.echoes.append(echo)
        answer, text = self.answer, self.text(echo)
        if answer.shape == "disconnect":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        headers = {"X-Echo": " ".join(text.encode("ascii", "backslashreplace").decode().split())[:4000]}
        if answer.shape == "json":
            payload = {"ok": False, "error_code": answer.status, "description": text, "message": text,
                       "code": 20003, "errors": [text], "status": "refused"}
            return web.Response(status=answer.status, body=orjson.dumps(payload), headers=headers,
                                content_type="application/json")
        if answer.shape == "teams":
            text = f"returned HTTP error {answer.status} with ContextId {text}"
            return web.Response(status=200, text=text, headers=headers)
        return web.Response(status=answer.status, text=text, headers=headers)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[HttpSender]:
    policy = NetPolicy.from_strings(["127.0.0.0/8"])
    session = aiohttp.ClientSession(connector=make_connector(policy))
    sender = HttpSender(session, policy)
    yield sender
    await sender.close()
    await session.close()


# ------------------------------------------------------------------------------------ the echoing SMTP server


class SmtpEcho:
    """Refuses AUTH (535 permanent, 454 temporary) or, once AUTH passes, MAIL FROM (550), echoing the
    AUTH PLAIN argument and the decoded login and password in the reply text."""

    def __init__(self) -> None:
        self.code = 535
        self.accept_auth = False
        self.lead = 0
        self.anchor: str | None = None
        self.echoes: list[str] = []

    def reply(self, echo: str) -> str:
        self.echoes.append(echo)
        start = echo.find(self.anchor) if self.anchor else 0
        return f"{self.code} 5.7.8 " + "x" * self.lead + echo[max(start, 0):]

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        if self.accept_auth:
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False, message=self.reply(_auth_echo(mechanism, data)))

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        return self.reply(f"MAIL FROM:<{address}> after {_auth_echo('PLAIN', session.auth_data)}")


def _auth_echo(mechanism: str, data: LoginPassword) -> str:
    plain = base64.b64encode(b"\0" + data.login + b"\0" + data.password).decode()
    return f"AUTH {mechanism} {plain} login={data.login.decode()} password={data.password.decode()}"


def _certificate(folder: Path) -> ssl.SSLContext:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed for the SMTP server's STARTTLS certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Callable[[], tuple[SmtpEcho, int]]]:
    started: list[Controller] = []

    def start() -> tuple[SmtpEcho, int]:
        handler = SmtpEcho()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=_certificate(tmp_path),
                                authenticator=handler.authenticate, auth_require_tls=True)
        controller.start()
        started.append(controller)
        return handler, port

    yield start
    for controller in started:
        controller.stop()


# ------------------------------------------------------------------------------------------------ the tests


_deliveries = iter(range(1, 1_000_000))


def message() -> Message:
    event = Event("evt_01J0000000000000000000000S", "db.disk_full", Severity.ERROR,
                  {"summary": "Disk 97% full on db-1", "host": "db-1"}, 1_700_000_000.0)
    # a new delivery every time: Twilio remembers who took a delivery and would not ask again
    return Message(event=event, delivery_id=next(_deliveries), attempt=1, title="[ERROR] db.disk_full",
                   summary="Disk 97% full on db-1", fields=(("host", "db-1"),), link=None)


def secret_fields(config: ChannelConfig) -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        values = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        if values and all(isinstance(v, SecretStr) for v in values):
            shown[name] = [v.get_secret_value() for v in values]
    return shown


def assert_no_leak(text: str, case: Case, what: str) -> None:
    found = sorted(piece for piece in case.forbidden() if piece in text)
    assert not found, f"{case.label}: {what} leaked {found[:3]} in {text!r}"


async def failures(channel: Any, case: Case, server: EchoServer) -> AsyncIterator[tuple[Answer, str]]:
    """Send through every failing answer; yield (the answer, the error text) for each send that failed."""
    echoing = [Answer(status, shape) for status in STATUSES for shape in ("text", "json")]
    echoing += [Answer(500, "teams"), Answer(410, "teams")]
    for answer in [*echoing, Answer(302), Answer(500, "disconnect")]:
        server.answer = answer
        if (text := await send(channel)) is not None:
            yield answer, text
    sent = "\n".join(server.echoes)
    for answer in echoing:  # again, with each secret the request carried placed where a cut would fall
        for anchor in (a for a in case.anchors() if a in sent):
            for lead in LEADS:
                server.answer = Answer(answer.status, answer.shape, anchor, lead)
                if (text := await send(channel)) is not None:
                    yield server.answer, text


async def send(channel: Any) -> str | None:
    try:
        await channel.send(message())
    except ChannelError as exc:
        return str(exc)
    return None


def check_config(config: ChannelConfig, case: Case, raw: dict[str, Any]) -> None:
    declared = secret_fields(config)
    for values in declared.values():
        assert all(v for v in values)
    carried = {s for values in declared.values() for v in values for s in case.secrets if s in v}
    assert carried == set(case.secrets), f"{case.label}: a listed secret is not in a Secret field: {declared}"
    assert_no_leak(repr(config), case, "repr(config)")
    assert_no_leak(str(config), case, "str(config)")
    assert_no_leak(config.model_dump_json(), case, "model_dump_json()")
    for key in declared:
        shown = _shown(config, key, raw[key])
        assert_no_leak(orjson.dumps(shown).decode(), case, f"the admin view of {key!r}")


@pytest.mark.parametrize("kind", sorted(REGISTRY))
async def test_no_channel_type_leaks_a_secret(kind: str, echo: EchoServer, http: HttpSender,
                                              smtp: Callable[[], tuple[SmtpEcho, int]]) -> None:
    if kind not in CASES:
        pytest.fail(f"channel type {kind!r} has no entry in CASES of tests/unit/test_channel_secrets.py: "
                    "add a valid config with distinctive secrets")
    if kind == "email":
        await _check_email(http, smtp)
        return
    for case in CASES[kind](Target(echo.url)):
        raw = {"name": "leak-check", "type": kind, **case.config}
        config = REGISTRY[kind].config_model.model_validate(raw)
        check_config(config, case, raw)
        channel = REGISTRY[kind](config, http)
        echo.echoes.clear()
        count = 0
        async for answer, text in failures(channel, case, echo):
            count += 1
            assert_no_leak(text, case, f"the error for {answer}")
        assert count >= len(STATUSES) * 2, f"{case.label}: too few failures were checked ({count})"
        on_wire = any(a in e for e in echo.echoes for a in case.anchors())
        assert on_wire == case.travels, f"{case.label}: the echo server saw the secret: {on_wire}"


async def _check_email(http: HttpSender, smtp: Callable[[], tuple[SmtpEcho, int]]) -> None:
    server, port = smtp()
    (case,) = CASES["email"](Target("", port))
    raw = {"name": "leak-check", "type": "email", **case.config}
    config = REGISTRY["email"].config_model.model_validate(raw)
    check_config(config, case, raw)
    channel = REGISTRY["email"](config, http)
    checked = 0
    for accept_auth, code in ((False, 535), (False, 454), (True, 550), (True, 451)):
        server.accept_auth, server.code = accept_auth, code
        for anchor in (None, *case.anchors()):
            for lead in LEADS if anchor else (0,):
                server.anchor, server.lead = anchor, lead
                text = await send(channel)
                assert text is not None, "the SMTP server refused, yet the send succeeded"
                assert_no_leak(text, case, f"the error for SMTP {code} (anchor {anchor!r}, lead {lead})")
                checked += 1
    assert any(case.secrets[0] in e for e in server.echoes), "the SMTP server never saw the password"
    assert checked >= 4


async def test_a_token_in_a_plain_webhook_urls_query_never_shows_in_an_error(echo: EchoServer,
                                                                              http: HttpSender) -> None:
    # the URL is not a declared secret, but its query often carries one (the admin API hides it as `?…`):
    # a receiver echoing its request path put `token=…` into last_error
    token, user_password = marker(), marker()
    url = echo.url.replace("http://", f"http://hook:{user_password}@") + f"/p400/x?token={token}&team=ops"
    case = Case("query", {"url": url}, (token, user_password), (basic("hook", user_password),))
    config = REGISTRY["webhook"].config_model.model_validate({"name": "query-check", "type": "webhook", "url": url})
    channel = REGISTRY["webhook"](config, http)
    checked = 0
    async for answer, text in failures(channel, case, echo):
        checked += 1
        assert_no_leak(text, case, f"the error for {answer}")
    assert checked >= len(STATUSES) * 2 and any(token in e for e in echo.echoes)  # it did travel, and never came back
