"""The webhook's lean HTTP client (alertd/channels/wire.py) against scripted receivers on 127.0.0.1: what
comes back, what is kept alive, and what is refused or failed."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import InvalidUrlClientError

from alertd.channels import wire
from alertd.channels.wire import WireError, WirePool
from alertd.netguard import BlockedTarget, NetPolicy, validate_url
from tests.reliability.helpers import Behaviour, RawServer, self_signed_cert

LOOPBACK = NetPolicy.from_strings(["127.0.0.0/8", "::1/128"])


@contextlib.asynccontextmanager
async def receiver(script: Behaviour, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    """A scripted receiver on 127.0.0.1; the script reads each request itself (RawServer.next_request)."""
    server = await RawServer(script, read_first=False).start(tls)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def pool() -> AsyncIterator[WirePool]:
    p = WirePool(LOOPBACK)
    yield p
    await p.close()


def url(port: int, path: str = "/hook", host: str = "127.0.0.1") -> object:
    return validate_url(f"http://{host}:{port}{path}", LOOPBACK)


async def ok_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
    while True:
        body = await r.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()


async def test_replies_come_back_and_the_connection_is_kept_alive(pool: WirePool) -> None:
    async with receiver(ok_forever) as r:
        for n in range(3):
            reply = await pool.request("POST", url(r.port), {"X-N": str(n)}, b"body%d" % n)
            assert (reply.status, reply.body) == (200, b"body%d" % n)
        assert r.connections == 1
        head = r.heads[0].decode()
        assert head.startswith("POST /hook HTTP/1.1\r\n") and f"Host: 127.0.0.1:{r.port}\r\n" in head
        assert "X-N: 0\r\n" in head and "Content-Length: 5\r\n" in head


async def test_userinfo_becomes_basic_auth_and_a_query_is_sent(pool: WirePool) -> None:
    async with receiver(ok_forever) as r:
        await pool.request("POST", validate_url(f"http://user:pw@127.0.0.1:{r.port}/h?a=1", LOOPBACK), {}, b"")
        assert r.heads[0].startswith(b"POST /h?a=1 HTTP/1.1") and b"Authorization: Basic dXNlcjpwdw==" in r.heads[0]


async def test_chunked_interim_and_close_delimited_replies(pool: WirePool) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n"
                     b"Retry-After: 7\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await r.next_request(reader)
        writer.write(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\nuntil the end")

    async with receiver(script) as r:
        first = await pool.request("POST", url(r.port), {}, b"x")
        assert (first.status, first.body, first.headers["retry-after"]) == (201, b"abcde", "7")
        second = await pool.request("POST", url(r.port), {}, b"x")
        assert (second.status, second.body) == (202, b"until the end")


async def test_only_a_prefix_of_an_endless_reply_is_read(pool: WirePool) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        writer.write(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"4000\r\n" + b"z" * 0x4000 + b"\r\n")
            await writer.drain()

    async with receiver(script) as r:
        reply = await asyncio.wait_for(pool.request("POST", url(r.port), {}, b"x"), 5)
        assert reply.status == 500 and len(reply.body) == 64 * 1024


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",  # cut short
    b"",  # closed without a word
    b"SMTP ready\r\n\r\n",  # not HTTP
])
async def test_a_broken_reply_is_a_wire_error(pool: WirePool, reply: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        writer.write(reply)

    async with receiver(script) as r:
        with pytest.raises(WireError):
            await pool.request("POST", url(r.port), {}, b"x")


async def test_a_kept_alive_connection_closed_by_the_receiver_is_replaced_once(pool: WirePool) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readexactly(1)  # closes as the next request starts, without answering it

    async with receiver(script) as r:
        assert (await pool.request("POST", url(r.port), {}, b"x")).status == 200
        assert (await pool.request("POST", url(r.port), {}, b"x")).status == 200
        assert r.connections == 2  # the first, which failed on reuse, and its replacement


async def test_a_reply_sent_before_the_request_counts(pool: WirePool) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        await r.next_request(reader)

    async with receiver(script) as r:
        assert (await pool.request("POST", url(r.port), {}, b"x")).status == 204


async def test_a_cancelled_exchange_does_not_leave_its_connection_for_reuse(pool: WirePool) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        if r.connections == 1:
            await asyncio.sleep(10)  # the first request hangs
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await r.next_request(reader)

    async with receiver(script) as r:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.request("POST", url(r.port), {}, b"x")
        reply = await pool.request("POST", url(r.port), {}, b"x")
        assert reply.body == b"ok" and r.connections == 2


async def test_an_idle_connection_past_its_time_is_not_reused(pool: WirePool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "IDLE_S", 0.05)
    async with receiver(ok_forever) as r:
        await pool.request("POST", url(r.port), {}, b"x")
        await asyncio.sleep(0.1)
        await pool.request("POST", url(r.port), {}, b"x")
        assert r.connections == 2


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0177.0.0.1", "127.0.0.1."])
async def test_legacy_ipv4_spellings_are_refused_as_aiohttp_does(pool: WirePool, host: str) -> None:
    with pytest.raises(InvalidUrlClientError, match="canonical"):
        await pool.request("POST", url(9, host=host), {}, b"x")


async def test_the_policy_is_applied_to_what_the_name_resolves_to() -> None:
    strict = WirePool(NetPolicy.from_strings([]))
    with pytest.raises(BlockedTarget, match="resolves to"):
        await strict.request("POST", validate_url("http://localhost:9/h", LOOPBACK), {}, b"x")
    await strict.close()


async def test_a_refused_connection_is_a_wire_error_in_the_systems_words(pool: WirePool) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(WireError) as caught:
        await pool.request("POST", url(port), {}, b"x")
    assert str(caught.value)


async def answer_once(reply: bytes) -> Behaviour:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        writer.write(reply)
        await writer.drain()
        await reader.read()

    return script


@pytest.mark.parametrize(("reply", "error"), [
    (b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 200_000, "head is over 64 KiB"),
    (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", "over 128 headers"),
])
async def test_a_head_past_the_limits_is_an_error_not_a_burden(pool: WirePool, reply: bytes, error: str) -> None:
    async with receiver(await answer_once(reply)) as r:
        with pytest.raises(WireError, match=error):
            await asyncio.wait_for(pool.request("POST", url(r.port), {}, b"x"), 5)


async def test_trailers_are_not_headers(pool: WirePool) -> None:
    async with receiver(await answer_once(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n"
                                          b"2\r\nno\r\n0\r\nRetry-After: 3600\r\n\r\n")) as r:
        reply = await pool.request("POST", url(r.port), {}, b"x")
        assert reply.status == 503 and reply.body == b"no" and "Retry-After" not in reply.headers


async def test_bytes_past_the_reply_leave_the_connection_out_of_the_pool(pool: WirePool) -> None:
    """A stray second reply in the same read as the first is not the next request's answer."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        if r.connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Stale\r\nRetry-")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"After: 3600\r\nContent-Length: 5\r\n\r\nstale")
        else:
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nfresh")
        await reader.read()

    async with receiver(script) as r:
        first = await pool.request("POST", url(r.port), {}, b"x")
        assert (first.status, first.body, "Retry-After" in first.headers) == (200, b"ok", False)
        await asyncio.sleep(0.1)
        second = await pool.request("POST", url(r.port), {}, b"x")
        assert (second.status, second.body) == (201, b"fresh") and r.connections == 2


async def test_a_request_is_sent_again_at_most_once(pool: WirePool) -> None:
    """Every kept-alive connection drops the next request unanswered: one attempt, at most two sends."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await r.next_request(reader)  # read, acted on, never answered

    async with receiver(script) as r:
        await asyncio.gather(*(pool.request("POST", url(r.port), {}, b"x") for _ in range(6)))
        before = len(r.heads)
        # a reused connection fails unanswered, the one retry goes to a new connection, which answers
        assert (await pool.request("POST", url(r.port), {}, b"x")).status == 200
        assert len(r.heads) - before == 2


class CountingResolver:
    """Answers from a table, counting lookups (slowly, so that concurrent ones overlap)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls = 0

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, object]]:
        self.calls += 1
        await asyncio.sleep(0.05)
        return [{"hostname": host, "host": ip, "port": port, "family": 10 if ":" in ip else 2, "proto": 0,
                 "flags": 0} for ip in self.answers[host]]

    async def close(self) -> None:
        return None


async def test_lookups_are_shared_and_kept_and_the_next_address_is_tried() -> None:
    from alertd.netguard import GuardedResolver

    names = CountingResolver({"hook.test": ["127.0.0.2", "127.0.0.1"]})  # nothing listens on 127.0.0.2
    pool = WirePool(LOOPBACK, GuardedResolver(LOOPBACK, names))  # type: ignore[arg-type]
    try:
        async with receiver(ok_forever) as r:
            target = validate_url(f"http://hook.test:{r.port}/h", LOOPBACK)
            replies = await asyncio.gather(*(pool.request("POST", target, {}, b"x") for _ in range(10)))
            assert {reply.status for reply in replies} == {200} and names.calls == 1
            assert b"Host: hook.test:%d\r\n" % r.port in r.heads[0]
    finally:
        await pool.close()


async def test_a_trailing_dot_is_not_sent() -> None:
    from alertd.netguard import GuardedResolver

    pool = WirePool(LOOPBACK, GuardedResolver(LOOPBACK, CountingResolver({"hook.test.": ["127.0.0.1"]})))  # type: ignore[arg-type]
    try:
        async with receiver(ok_forever) as r:
            await pool.request("POST", validate_url(f"http://hook.test.:{r.port}/h", LOOPBACK), {}, b"x")
            assert b"Host: hook.test:%d\r\n" % r.port in r.heads[0]
    finally:
        await pool.close()


async def test_https_verifies_against_the_trust_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = self_signed_cert(tmp_path)
    if made is None:
        pytest.skip("no openssl to make a certificate with")
    cert, key = made
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async with receiver(ok_forever, context) as r:
        target = validate_url(f"https://127.0.0.1:{r.port}/h", LOOPBACK)
        untrusting = WirePool(LOOPBACK)  # the system's trust store does not know this certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusting.request("POST", target, {}, b"x")
        await untrusting.close()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what an operator's private CA would be
        trusting = WirePool(LOOPBACK)
        reply = await trusting.request("POST", target, {}, b"secret")
        assert (reply.status, reply.body) == (200, b"secret")
        await trusting.close()


async def test_idle_connections_are_closed_on_a_timer(pool: WirePool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel that stops sending does not keep its sockets open until the receiver closes them."""
    monkeypatch.setattr(wire, "IDLE_S", 0.1)
    closed = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, r: RawServer) -> None:
        await r.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until alertd closes it
        closed.set()

    async with receiver(script) as r:
        await pool.request("POST", url(r.port), {}, b"x")
        await asyncio.wait_for(closed.wait(), 2)
