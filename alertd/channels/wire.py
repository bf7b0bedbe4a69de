"""A small HTTP/1.1 client for the webhook's one request: bytes out, a status, headers and a bounded body
back, over kept-alive connections per origin.

Why not aiohttp's client here: it costs ~75 µs a request on this machine, as much as a whole bare-aiohttp
sender and more than all of alertd's own work per delivery; this one, on httptools (llhttp), a few µs.
Webhooks are the channel a fleet's deliveries mostly go through; the vendor channels, each with its own
API and rate limit, stay on aiohttp. The outbound rules are the same as there (netguard.py): the name is
resolved by the guarded resolver, every address it gives must be allowed, and the connection goes to the
checked address itself; redirects are never followed; at most MAX_RESPONSE_BYTES of a reply are read.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import aiohappyeyeballs
import httptools
from aiohttp import BasicAuth, InvalidUrlClientError
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import is_canonical_ipv4_address, is_ip_address  # aiohttp's own rule, kept alike
from multidict import CIMultiDict
from yarl import URL

from alertd.netguard import BlockedTarget, GuardedResolver, NetPolicy, check_connect

MAX_RESPONSE_BYTES = 64 * 1024  # of a reply, read by either client: an endless body must not hold a worker
IDLE_S = 15.0  # a kept-alive connection unused this long is closed (aiohttp's client default too)
MAX_IDLE_PER_ORIGIN = 256
MAX_HEAD_BYTES = 64 * 1024  # a reply's status line and headers, read before giving up on it
MAX_HEADERS = 128  # aiohttp's client limit too
DNS_TTL_S = 10.0  # a checked answer is reused this long (aiohttp's connector default too)
MAX_DNS_ENTRIES = 1024  # and request heads' first lines kept, per (method, URL)
HAPPY_EYEBALLS_DELAY_S = 0.25  # the next address gets a try this long after the last (RFC 8305; aiohttp's too)


class WireError(Exception):
    """The receiver's side of the connection failed: closed early, or answered something not HTTP."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A reply, from either HTTP client (this one, or aiohttp's through HttpSender)."""

    status: int
    body: bytes
    headers: Mapping[str, str]


class _Connection(asyncio.Protocol):
    """One connection to one origin; one request at a time (no pipelining)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[HttpReply] | None = None
        self.closed = False
        self.received = False  # any byte of the current reply
        self.idle_since = 0.0
        self.used = False  # a request was sent on it
        self.early: HttpReply | None = None
        self.stray = False  # bytes past the reply, which no request asked for: the connection is not reusable
        self.head_bytes = 0  # read since the request went out (or the connection opened) while no head has ended
        self._reset()

    def _reset(self) -> None:
        """A new message: new objects, so that a reply already handed out never changes under its reader."""
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.body: list[bytes] = []
        self.size = 0
        self.head_done = False  # the head of a final (not 1xx) reply
        self.in_head = True
        self.keep_alive = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        self.waiter = None
        if self.head_done and not self._framed():  # a body that the close itself ends: the reply is whole
            waiter.set_result(self._reply())
        elif self.head_done:
            waiter.set_exception(WireError("the receiver closed the connection in the middle of its reply"))
        else:
            waiter.set_exception(WireError("the receiver closed the connection before answering"))

    def _framed(self) -> bool:
        """Whether the reply said where its body ends (a length, or chunks), so that a close before then
        cuts it short."""
        return "Content-Length" in self.headers or "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self.stray or (self.used and self.waiter is None):  # nothing asked: see on_message_begin
            self._abort()
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(WireError(f"the reply is not HTTP ({type(exc).__name__})"))
        except httptools.HttpParserUpgrade:
            self._fail(WireError("the receiver switched protocols"))
        if self.stray:
            self._abort()
        elif self.in_head and self.head_bytes > MAX_HEAD_BYTES:
            # httptools holds a status line or header until it ends, copying it as it grows: a head that does
            # not end would burn the loop and memory for the whole attempt (aiohttp stops at 8 KiB a line)
            self._fail(WireError(f"the reply's head is over {MAX_HEAD_BYTES // 1024} KiB"))

    def eof_received(self) -> bool:
        return False  # close; connection_lost settles the waiter

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.used and self.waiter is None:
            self.stray = True  # a second reply in the same read as the first: see data_received
        self._reset()

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.in_head or self.stray:
            return  # a chunked body's trailers are not headers
        if len(self.headers) >= MAX_HEADERS:
            self._fail(WireError(f"the reply has over {MAX_HEADERS} headers"))
            return
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.status = self.parser.get_status_code()
        self.head_done = self.status >= 200  # a 1xx is interim: the real answer follows

    def on_body(self, body: bytes) -> None:
        if self.stray:
            return
        if self.size < self.limit:
            body = body[:self.limit - self.size]
            self.body.append(body)
        self.size += len(body)
        if self.size >= self.limit and self.waiter is not None and not self.waiter.done():
            # an endless body must not hold the worker: the prefix is the reply, the connection is spent
            waiter, self.waiter = self.waiter, None
            waiter.set_result(self._reply())
            self._abort()

    def on_message_complete(self) -> None:
        if self.stray:
            return
        if not self.head_done:
            self._reset()  # after a 1xx: the final reply's head comes next
            return
        self.keep_alive = self.parser.should_keep_alive()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._reply())
        elif not self.used:
            self.early = self._reply()  # answered before it was asked (some receivers do): the reply all the same

    def _reply(self) -> HttpReply:
        return HttpReply(self.status, b"".join(self.body), self.headers)

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._abort()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, request: bytes) -> HttpReply:
        assert self.transport is not None
        first_use, self.used = not self.used, True
        if first_use and self.early is not None:
            if not self.closed:
                self.transport.write(request)
            self.keep_alive = False  # whatever it says to the request itself would be unasked-for
            return self.early
        if self.closed:
            raise WireError("the receiver closed the connection before answering")
        self.waiter = asyncio.get_running_loop().create_future()
        self.received = False
        self.head_bytes = 0
        self.head_done, self.in_head = False, True  # what connection_lost reads; on_message_begin resets the rest
        self.transport.write(request)
        return await self.waiter


class WirePool:
    """Connections kept alive per (scheme, host, port), most recently used first."""

    def __init__(self, policy: NetPolicy, resolver: AbstractResolver | None = None,
                 limit: int = MAX_RESPONSE_BYTES) -> None:
        self.policy = policy
        self.resolver = resolver or GuardedResolver(policy)
        self.limit = limit
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._dns: dict[tuple[str, int], tuple[float, list[ResolveResult]]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Future[list[ResolveResult]]] = {}
        self._starts: dict[tuple[str, URL], str] = {}  # request line and Host, per (method, URL)

    async def request(self, method: str, url: URL, headers: Mapping[str, str], body: bytes) -> HttpReply:
        """One exchange. The caller bounds it in time: a cancelled exchange closes its connection."""
        assert url.host is not None and url.port is not None
        origin = (url.scheme, url.host, url.port)
        start = self._starts.get((method, url))
        if start is None:
            if len(self._starts) >= MAX_DNS_ENTRIES:
                self._starts.clear()
            start = self._starts[(method, url)] = _request_line_and_host(method, url)
        data = _request_bytes(start, url, headers, body)
        connection = self._take(origin)
        reused = connection is not None
        while True:
            if connection is None:
                connection = await self._connect(url)
            try:
                reply = await connection.exchange(data)
            except WireError:
                connection._abort()
                # A kept-alive connection the receiver closed just as it was reused (its idle timeout): once,
                # on a new connection. Nothing of the request was answered, and the webhook-id it carries lets
                # a receiver that did act on it dedupe (Go's client retries, on a reused connection, the requests
                # it considers idempotent: those with an Idempotency-Key, which the webhook-id is in all but name).
                if reused and not connection.received:
                    connection, reused = None, False
                    continue
                raise
            except BaseException:
                connection._abort()  # cancelled or timed out mid-exchange: its state is unknown
                raise
            self._give_back(origin, connection)
            return reply

    def _take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_S:
                return connection
            connection._abort()
        return None

    def _give_back(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        if not connection.keep_alive or connection.closed or self._closed:
            connection._abort()
            return
        now = time.monotonic()
        connection.idle_since = now
        idle = self._idle.setdefault(origin, deque())
        idle.append(connection)
        if len(idle) > MAX_IDLE_PER_ORIGIN:
            idle.popleft()._abort()
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_S, self._sweep)

    def _sweep(self) -> None:
        """Close what has been idle IDLE_S, every IDLE_S while anything is idle: a channel that stops sending
        does not keep its sockets open until the receiver closes them."""
        self._sweeper = None
        now = time.monotonic()
        for origin, idle in list(self._idle.items()):
            while idle and (idle[0].closed or now - idle[0].idle_since >= IDLE_S):
                idle.popleft()._abort()
            if not idle:
                del self._idle[origin]
        if self._idle and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_S, self._sweep)

    async def _connect(self, url: URL) -> _Connection:
        """A new connection to the first address of the name that takes it. Failures as WireError with the
        system's words (what aiohttp's connector reports too), except a policy refusal and a certificate
        that does not verify, which keep their own types."""
        try:
            return await self._open(url)
        except (BlockedTarget, ssl.SSLCertVerificationError):
            raise
        except OSError as exc:
            raise WireError(exc.strerror or str(exc) or type(exc).__name__) from None

    async def _open(self, url: URL) -> _Connection:
        host, port = cast(str, url.raw_host), cast(int, url.port)
        if is_ip_address(host) and ":" not in host and not is_canonical_ipv4_address(host):
            # 2130706433, 127.1, 0177.0.0.1: the system's resolver maps them onto an address, which a policy
            # reading the URL would not expect. aiohttp refuses them too, with this same error
            raise InvalidUrlClientError(host, "is not a canonical IPv4 address")
        addresses = []
        for address in await self._resolve(host, port):
            ip = address["host"]
            check_connect(self.policy, ip)
            family = address["family"]
            where = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
            addresses.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", where))
        # to the checked addresses only, the next one tried 250 ms after the last, as aiohttp's connector does
        sock = await aiohappyeyeballs.start_connection(addresses, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S)
        tls = self._tls_context() if url.scheme == "https" else None
        try:
            _, protocol = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self.limit), sock=sock, ssl=tls,
                server_hostname=host.rstrip(".") if tls is not None else None)  # no dot in SNI (as aiohttp)
        except BaseException:
            sock.close()
            raise
        return protocol

    async def _resolve(self, host: str, port: int) -> list[ResolveResult]:
        """The guarded resolver's answer, shared by the connections opened at once and kept DNS_TTL_S: only
        checked answers are kept, and a refusal is asked again next time."""
        key = (host, port)
        now = time.monotonic()
        cached = self._dns.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._resolving.get(key)
        if pending is None:
            pending = self._resolving[key] = asyncio.ensure_future(
                self.resolver.resolve(host, port, family=socket.AF_UNSPEC))
            pending.add_done_callback(lambda _: self._resolving.pop(key, None))
        answer = await asyncio.shield(pending)  # one caller's timeout does not cancel the others' lookup
        if len(self._dns) >= MAX_DNS_ENTRIES:
            self._dns.clear()
        self._dns[key] = (time.monotonic() + DNS_TTL_S, answer)
        return answer

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()  # system trust store and hostname checks, as aiohttp's
        return self._tls

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for idle in self._idle.values():
            for connection in idle:
                connection._abort()
        self._idle.clear()


def _request_line_and_host(method: str, url: URL) -> str:
    """What a request's head starts with: the same for every request to one URL, so made once per URL."""
    host = cast(str, url.raw_host).rstrip(".")  # "example.com." is sent as example.com, as aiohttp sends it
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if url.explicit_port is not None and url.explicit_port != {"http": 80, "https": 443}.get(url.scheme):
        host = f"{host}:{url.explicit_port}"
    return f"{method} {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {host}\r\n"


def _request_bytes(start: str, url: URL, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    if url.user is not None and not any(name.lower() == "authorization" for name in headers):
        lines.append(f"Authorization: {BasicAuth.from_url(url).encode()}\r\n")  # type: ignore[union-attr]
    return f"{start}{''.join(lines)}Content-Length: {len(body)}\r\n\r\n".encode() + body
