"""The email channel against a real aiosmtpd server on 127.0.0.1: plain, STARTTLS, implicit TLS, AUTH,
what the received message looks like, and how SMTP answers are classified."""

from __future__ import annotations

import asyncio
import email
from email.message import EmailMessage
from email.policy import default as default_policy

import aiohttp
import pytest

from alertd.channels.base import HttpSender, PermanentError, RetryableError
from alertd.channels.email import EmailChannel, EmailConfig
from alertd.netguard import NetPolicy, make_connector

from .conftest import SMTP_PASSWORD, SMTP_USER, authenticate, free_port, make_message

TO = ["oncall@example.com", "lead@example.org"]


def channel(http: HttpSender, port: int, **extra: object) -> EmailChannel:
    settings: dict[str, object] = {"name": "ops-email", "host": "127.0.0.1", "port": port, "security": "none",
                                   "from": "alertd <alertd@example.net>", "to": TO, "timeout": "5s", **extra}
    return EmailChannel(EmailConfig.model_validate(settings), http)


def parse(content: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(content, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_it_sends_multipart_alternative_with_everything_escaped(http, smtp_server):
    server = smtp_server()
    outcome = await channel(http, server.port).send(make_message())
    assert outcome.status == 250
    [received] = server.handler.received
    assert received.mail_from == "alertd@example.net"
    assert received.rcpt_tos == TO  # nothing in the payload added a recipient
    mail = parse(received.content)
    assert mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    html = mail.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    assert 'href="javascript' not in html and "&lt;a href=&quot;javascript" in html
    assert "\u202e" not in html  # a bidi override cannot reorder what the reader sees
    assert f'<a href="https://alertd.example/ui/events/{"evt_01J0000000000000000000000A"}">' in html
    text = mail.get_body(("plain",)).get_content()
    assert "<script>alert(1)</script>" in text  # plain text carries the producer's words as they were
    assert "View the event: https://alertd.example/ui/events/" in text


async def test_the_subject_cannot_inject_headers(http, smtp_server):
    server = smtp_server()
    await channel(http, server.port).send(make_message())
    raw = server.handler.received[0].content
    mail = parse(raw)
    subject = str(mail["Subject"]).strip()  # the stdlib may fold the whole value onto a continuation line
    assert subject == "[ERROR] deploy <script>alert(1)</script> Bcc: victim@evil.example forged body"
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert b"\r\nBcc:" not in raw and b"\nX-Injected:" not in raw
    assert mail["From"] == "alertd <alertd@example.net>"
    assert mail["To"] == "oncall@example.com, lead@example.org"
    assert mail["Date"] is not None and mail["Date"].datetime.tzinfo is not None


async def test_the_message_id_is_stable_across_retries_of_one_delivery(http, smtp_server):
    server = smtp_server()
    hook = channel(http, server.port)
    await hook.send(make_message(attempt=1))
    await hook.send(make_message(attempt=2))
    await hook.send(make_message(delivery_id=8))
    first, retry, other = (parse(r.content)["Message-ID"] for r in server.handler.received)
    assert first == retry == "<alertd-evt_01J0000000000000000000000A-7@example.net>"
    assert other != first


async def test_it_sends_over_starttls_with_auth(http, smtp_server, certificate):
    server = smtp_server(tls_context=certificate.server_context(), require_starttls=True,
                         authenticator=authenticate, auth_require_tls=True)
    hook = channel(http, server.port, security="starttls", username=SMTP_USER, password=SMTP_PASSWORD,
                   tls_ca_file=str(certificate.cert))
    await hook.send(make_message())
    [received] = server.handler.received
    assert received.tls and received.authenticated


async def test_verify_tls_false_accepts_a_self_signed_certificate(http, smtp_server, certificate):
    server = smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    await channel(http, server.port, security="starttls", verify_tls=False).send(make_message())
    assert server.handler.received[0].tls


async def test_an_unverifiable_certificate_is_refused(http, smtp_server, certificate):
    server = smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    with pytest.raises(RetryableError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await channel(http, server.port, security="starttls").send(make_message())
    assert server.handler.received == []


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_tls_verifies_the_configured_name_while_dialing_the_checked_address(smtp_server, name_only_certificate,
                                                                                  security):
    context = name_only_certificate.server_context()
    server = smtp_server(ssl_context=context) if security == "tls" else smtp_server(tls_context=context)
    # `localhost` may also resolve to ::1, where nothing listens: the channel moves on to 127.0.0.1
    policy = NetPolicy.from_strings(["127.0.0.0/8", "::1/128"])
    async with aiohttp.ClientSession(connector=make_connector(policy)) as session:
        sender = HttpSender(session, policy)
        by_name = channel(sender, server.port, host="localhost", security=security,
                          tls_ca_file=str(name_only_certificate.cert))
        await by_name.send(make_message())
        by_address = channel(sender, server.port, host="127.0.0.1", security=security,
                             tls_ca_file=str(name_only_certificate.cert))
        with pytest.raises(RetryableError, match=r"IP address mismatch|certificate verify failed"):
            await by_address.send(make_message())
    [received] = server.handler.received
    assert received.tls


async def test_starttls_required_but_not_offered_is_permanent_and_nothing_is_sent_in_clear(http, smtp_server):
    server = smtp_server()  # no tls_context: the server offers no STARTTLS (or someone stripped it)
    with pytest.raises(PermanentError, match="STARTTLS"):
        await channel(http, server.port, security="starttls").send(make_message())
    assert server.handler.received == []


async def test_a_wrong_password_is_permanent_and_never_shown(http, smtp_server, certificate):
    server = smtp_server(tls_context=certificate.server_context(), authenticator=authenticate)
    hook = channel(http, server.port, security="starttls", username=SMTP_USER, password="wrong-password-123",
                   verify_tls=False)
    with pytest.raises(PermanentError, match="535") as caught:
        await hook.send(make_message())
    assert "wrong-password-123" not in str(caught.value)


@pytest.mark.parametrize(("where", "reply", "kind"), [
    ("rcpt", "451 4.7.1 Greylisted, try again later", RetryableError),
    ("rcpt", "452 4.2.2 Mailbox full", RetryableError),
    ("rcpt", "550 5.1.1 Mailbox unavailable", PermanentError),
    ("rcpt", "553 5.1.3 Bad recipient address syntax", PermanentError),
    ("data", "451 4.3.0 Local error in processing", RetryableError),
    ("data", "554 5.7.1 Message rejected", PermanentError),
])
async def test_smtp_answers_are_classified(http, smtp_server, where, reply, kind):
    server = smtp_server()
    if where == "rcpt":
        server.handler.rcpt_reply = lambda address: reply
    else:
        server.handler.data_reply = reply
    with pytest.raises(kind) as caught:
        await channel(http, server.port).send(make_message())
    assert reply.split()[0] in str(caught.value) and reply.split()[-1] in str(caught.value)


async def test_a_partial_refusal_names_the_refused_recipient(http, smtp_server):
    server = smtp_server()
    server.handler.rcpt_reply = lambda address: "550 5.1.1 No such user" if address.startswith("lead") else "250"
    with pytest.raises(PermanentError, match=r"refused 1 of 2 recipients \(1 accepted\): lead@example.org: 550"):
        await channel(http, server.port).send(make_message())
    assert server.handler.received[0].rcpt_tos == ["oncall@example.com"]


async def test_the_servers_reply_is_kept_without_the_secret(http, smtp_server, certificate):
    server = smtp_server(tls_context=certificate.server_context(), authenticator=authenticate)
    server.handler.data_reply = f"554 5.7.1 rejected, you sent {SMTP_PASSWORD}"
    hook = channel(http, server.port, security="starttls", username=SMTP_USER, password=SMTP_PASSWORD,
                   verify_tls=False)
    with pytest.raises(PermanentError) as caught:
        await hook.send(make_message())
    assert SMTP_PASSWORD not in str(caught.value)
    assert "554 5.7.1 rejected, you sent ****" in str(caught.value)


async def test_a_refused_connection_is_retryable(http):
    with pytest.raises(RetryableError, match="SMTP connection"):
        await channel(http, free_port()).send(make_message())


async def test_a_silent_server_times_out_as_retryable(http):
    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RetryableError, match="timed out"):
            await channel(http, port, timeout="0.5s").send(make_message())
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_private_smtp_host_outside_the_allow_list_is_refused(smtp_server, host):
    server = smtp_server()
    policy = NetPolicy.from_strings([])
    async with aiohttp.ClientSession(connector=make_connector(policy)) as session:
        hook = channel(HttpSender(session, policy), server.port, host=host)
        with pytest.raises(PermanentError, match="blocked by the outbound URL policy"):
            await hook.send(make_message())
    assert server.handler.received == []


def test_the_default_port_follows_the_security_mode():
    from alertd.channels.email import DEFAULT_PORTS
    assert DEFAULT_PORTS == {"none": 25, "starttls": 587, "tls": 465}
    config = EmailConfig.model_validate({"name": "m", "host": "smtp.example.com", "from": "a@example.com",
                                         "to": ["b@example.com"]})
    assert config.security == "starttls" and config.port is None and config.verify_tls


@pytest.mark.parametrize(("change", "complaint"), [
    ({"to": []}, "at least 1"),
    ({"to": [f"u{i}@example.com" for i in range(51)]}, "at most 50"),
    ({"to": ["not-an-address"]}, "not a valid email address"),
    ({"to": ["a@example.com", "A@example.com"]}, "twice"),
    ({"from": "alertd@example.net\r\nBcc: x@evil.example"}, "one line"),
    ({"username": "u", "password": "p", "security": "none"}, "in clear"),
    ({"username": "u"}, "go together"),
    ({"security": "ssl"}, "security"),
    ({"tls_ca_file": "/nonexistent/ca.pem"}, "tls_ca_file"),
    ({"host": "smtp.example.com\r\nX: y"}, "host"),
])
def test_bad_config_is_refused(change, complaint):
    settings = {"name": "m", "host": "smtp.example.com", "from": "a@example.com", "to": ["b@example.com"],
                **change}
    with pytest.raises(ValueError, match=complaint):
        EmailConfig.model_validate(settings)


@pytest.mark.parametrize("title", [
    # RFC 2047 encoded-words are plain ASCII, so one_line lets them through; the stdlib decoded them while
    # parsing the assigned header: a CRLF, new headers, or a blank line and a forged body on the wire
    "=?utf-8?q?db-1=0D=0AReply-To:_attacker@evil.example=0D=0AX-Injected:_yes?= is down",
    "=?utf-8?b?DQoNCkFsbCBjbGVhciwgaWdub3JlIHByZXZpb3VzIGFsZXJ0cw==?= is down",
    "=?utf-8?q?=E2=80=AEdlrow?= is down",  # a bidi override one_line removes, smuggled in encoded
])
async def test_an_encoded_word_in_the_subject_stays_literal_text(http, smtp_server, title):
    server = smtp_server()
    await channel(http, server.port).send(make_message(title=title))
    raw = server.handler.received[0].content
    mail = parse(raw)
    assert mail["Reply-To"] is None and mail["X-Injected"] is None
    assert mail["From"] == "alertd <alertd@example.net>"  # the headers after Subject are still headers
    assert mail.get_content_type() == "multipart/alternative"
    subject = str(mail["Subject"]).replace("\u200b", "").strip()
    assert subject == title  # shown as the producer wrote it, nothing decoded out of it
    assert "\u202e" not in str(mail["Subject"])
