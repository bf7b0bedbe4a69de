"""The protocol alertd listens with. A plain `POST /v1/events` is answered here; the first request of any
other kind hands its connection, from that request's first byte on, to aiohttp, which serves it from
then on exactly as if it had accepted the connection itself.

Why: aiohttp's server costs ~40 µs a request on this machine (request and response objects, header maps,
the writer), as much as all of alertd's own ingest work, while httptools (llhttp, the parser aiohttp's
own C parser is built on) reads a request in a few µs. The producers' POST is the request a fleet sends
at thousands a second; the admin API and the UI are not. With this front alertd answers durable ingest
faster than a bare aiohttp handler that stores nothing (bench/README.md, sixth round).

What is answered here is deliberately narrow, so that nothing behaves differently: HTTP/1.1,
`POST /v1/events` (a query is ignored, as aiohttp's route ignores it), no Content-Encoding, Expect,
Upgrade or Transfer-Encoding other than chunked, a head within aiohttp's own limits. Everything else,
malformed requests included, is aiohttp's, which answers as it always has. A request can be handed over
only from its first byte; that byte is known unless the request came in the same read as the end of an
earlier one (pipelining), and such a request, if it is not a plain ingest, is refused with a 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

import httptools
import orjson
import structlog

from alertd.api.app import MAX_FIELD_SIZE, MAX_LINE_SIZE
from alertd.api.auth import admit
from alertd.api.errors import error_body
from alertd.api.events import accept_body, refuse_when_stopping
from alertd.api.guard import ERROR_CODES, failure, refusal, too_large, unreadable
from alertd.api.state import Runtime
from alertd.auth import ApiKey
from alertd.errors import RequestError

log = structlog.get_logger("alertd.api")

INGEST_PATH = b"/v1/events"
# aiohttp's limits for the same connection (build_app's handler_args and its default header count): a head
# past them is handed over, and aiohttp refuses it as it always has
MAX_URL = MAX_LINE_SIZE
MAX_FIELD = MAX_FIELD_SIZE
MAX_HEADERS = 128
# aiohttp's own default, given to both so idle closes alike: longer than any load balancer's idle timeout, so
# that the balancer, not alertd, closes a kept-alive connection (else it may send on one alertd just closed)
KEEPALIVE_TIMEOUT = 3630.0
MAX_PIPELINED = 64  # answers owed on one connection before it is read further: a client that never reads
SWEEP_INTERVAL = 5.0
LINGER_S = 5.0  # after a closing answer, how long what the client still sends is read and dropped
LINGER_BYTES = 64 * 1024 * 1024  # and how much of it, at most
_HANDED_OVER = frozenset({b"content-encoding", b"expect", b"upgrade", b"transfer-encoding", b"sec-websocket-key1"})
_READ_ANYWAY = {b"x-api-key", b"authorization", b"content-length"}
# the headers aiohttp's parser refuses to see twice
_SINGLE = frozenset({b"host", b"content-type", b"user-agent", b"content-location", b"content-range", b"etag",
                     b"server", b"max-forwards"})
# read without the head ending (counted from the read after the one the request began in): past this, the
# head is aiohttp's to judge
MAX_HEAD_BYTES = 64 * 1024


class Front:
    """What a listener's connections share: the runtime, aiohttp's connection factory, the open ones."""

    def __init__(self, runtime: Runtime, aiohttp_protocol: Callable[[], asyncio.Protocol], max_body: int,
                 keepalive_timeout: float = KEEPALIVE_TIMEOUT) -> None:
        self.runtime = runtime
        self.aiohttp_protocol = aiohttp_protocol
        self.max_body = max_body
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._emptied = asyncio.Event()  # set when the last connection goes (close waits for it)
        self._date = (0, b"")

    def __call__(self) -> Connection:
        if self._sweeper is None and not self._closed:
            self._schedule_sweep()
        return Connection(self)

    def forget(self, connection: Connection) -> None:
        """A connection closed, or handed to aiohttp."""
        self.connections.discard(connection)
        if not self.connections:
            self._emptied.set()

    def date(self) -> bytes:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True).encode())
        return self._date[1]

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(min(SWEEP_INTERVAL, self.keepalive_timeout / 2), self._sweep)

    def _sweep(self) -> None:
        """One timer for every connection, not one per request: close those idle past the keep-alive timeout
        (a connection that opens a request and never finishes it counts as idle too)."""
        deadline = time.monotonic() - self.keepalive_timeout
        for connection in list(self.connections):
            if not connection.owed and connection.last_active < deadline:
                connection.close()
        self._schedule_sweep()

    async def close(self, timeout: float) -> None:
        """Stop: idle connections close now, the rest once the answers they owe are written (within
        `timeout`; what is left then is cut). Connections already handed to aiohttp are aiohttp's to close."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.close_when_answered()
        if self.connections:
            self._emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), timeout)
        for connection in list(self.connections):
            connection.abort()


class _Answer:
    """One answer owed, in request order; `data` is None until its ingest has committed."""

    __slots__ = ("close", "data", "task")  # task: held here, as asyncio itself keeps only a weak reference

    def __init__(self, data: bytes | None = None, close: bool = False) -> None:
        self.data = data
        self.close = close
        self.task: asyncio.Task[None] | None = None


class Connection(asyncio.Protocol):
    """One client connection while it sends plain ingest requests (httptools' callbacks below)."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.owed: deque[_Answer] = deque()
        self.last_active = time.monotonic()
        self.closing = False  # answer what is owed, read nothing more, then close
        self.write_paused = False
        self.reading_paused = False
        self.lingering = 0  # bytes read and dropped after the last answer (see _close_transport)
        # the current read's bytes from the current request's first byte on (None: that byte is not known)
        self.chunks: list[bytes] | None = None
        self.in_message = False
        self.completed_in_read = False
        self.hand_over = False  # this request, and the connection from it on, is aiohttp's
        self.read_in_message = 0  # bytes read since the current request began (or since the last one ended)
        self._reset()

    def _reset(self) -> None:
        self.headers_done = False
        self.single_seen: set[bytes] = set()
        self.url = b""
        self.header_count = 0
        self.api_key: str | None = None
        self.authorization: str | None = None
        self.content_length: int | None = None
        self.chunks_seen = 0
        self.body: list[bytes] = []
        self.body_size = 0

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast(asyncio.Transport, transport)
        self.front.connections.add(self)
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # answers are small and owed at once: never held back for Nagle's algorithm (aiohttp does the same)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.forget(self)
        self.closing = True
        # an ingest still committing finishes (its events are stored either way); its answer has no reader

    def eof_received(self) -> bool:
        # a client that half-closes after its last request still gets the answers it is owed
        self.closing = True
        return bool(self.owed) and not self.lingering

    def pause_writing(self) -> None:
        self.write_paused = True
        self._read_or_not()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._read_or_not()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            if self.lingering:
                self._discard(len(data))
            return
        if self.headers_done:
            # a body arriving slowly is not idle; a head or empty lines trickling in are (as for aiohttp)
            self.last_active = time.monotonic()
        if self.in_message:
            if self.chunks is not None:
                self.chunks.append(data)
        else:
            self.chunks = [data]
            self.read_in_message = 0
        self.read_in_message += len(data)
        if not self._feed(data):
            return
        if self.in_message and not self.hand_over and not self.closing:
            # httptools holds a header until it ends, and copies it as it grows: a head that does not end is
            # aiohttp's to refuse (its limits count as the bytes come), or, if it cannot take over, refused here
            if not self.headers_done and self.read_in_message > MAX_HEAD_BYTES:
                self.hand_over = True
            elif self.headers_done and self.read_in_message - self.body_size > MAX_HEAD_BYTES + 16 * self.chunks_seen:
                # chunk framing and trailers past any honest size (httptools holds a trailer whole)
                self._bad_request("the chunked body's framing and trailers are too large")
                return
        if self.hand_over:
            self._hand_over()

    def _feed(self, data: bytes) -> bool:
        """Parse; False if that ended in an answer already (the connection is closing)."""
        self.completed_in_read = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # only after an Upgrade header, which already hands the request over
        except httptools.HttpParserError as exc:
            if self.hand_over or self.closing:
                pass  # answered already (a refusal earlier in this read), or aiohttp's to answer
            elif self.chunks is not None:
                self.hand_over = True  # aiohttp's parser refuses it, in aiohttp's words, as before
            else:
                log.warning("unparseable_request", error=type(exc).__name__, status=400)
                self._bad_request(unreadable(type(exc).__name__))
                return False
        return True

    def _hand_over(self) -> None:
        if self.chunks is None:
            self._bad_request("a request that follows another in the same packet must be a "
                                             "plain POST /v1/events; send it after the answer")
        elif self.owed:
            self.closing = True  # nothing more is read here: aiohttp reads on once the answers are out
            self._read_or_not()
        else:
            self._give_to_aiohttp()

    # ------------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        if self.hand_over or self.closing:
            return  # what follows a request handed over goes with it; after a closing one, nothing is read
        if self.completed_in_read:
            self.chunks = None  # it starts somewhere inside this read, after another request's end
        self.in_message = True
        self.read_in_message = 0

    def on_url(self, url: bytes) -> None:
        if self.hand_over:
            return
        self.url += url
        if len(self.url) > MAX_URL:
            self.hand_over = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.hand_over or self.closing:
            return
        if self.headers_done:
            self._trailer(name, value)
            return
        self.header_count += 1
        if len(name) + len(value) > MAX_FIELD or self.header_count > MAX_HEADERS:
            self.hand_over = True
            return
        name = name.lower()
        if name in _READ_ANYWAY:
            self._read(name, value)
        elif name in _HANDED_OVER and not (name == b"transfer-encoding" and value.lower() == b"chunked") and not (
                name == b"content-encoding" and value.lower() == b"identity"):
            self.hand_over = True
        if name in _SINGLE:  # aiohttp refuses a second one of these (and a missing Host): so it shall
            if name in self.single_seen:
                self.hand_over = True
            self.single_seen.add(name)

    def _read(self, name: bytes, value: bytes) -> None:
        if name == b"x-api-key":
            if self.api_key is None:  # the first, as aiohttp's headers.get gives it
                self.api_key = value.decode("utf-8", "surrogateescape")
        elif name == b"authorization":
            if self.authorization is None:
                self.authorization = value.decode("utf-8", "surrogateescape")
        elif value.isdigit():
            self.content_length = int(value)

    def _trailer(self, name: bytes, value: bytes) -> None:
        """A chunked body's trailer: never a header (no key rides in one), but held to aiohttp's header
        limits, which aiohttp refuses the request for. Too late to hand over: refused here, in its words."""
        self.header_count += 1
        name = name.lower()
        repeated = name in _SINGLE and name in self.single_seen
        self.single_seen.add(name)
        if repeated or len(name) + len(value) > MAX_FIELD or self.header_count > MAX_HEADERS:
            log.warning("unparseable_request", error="BadHttpMessage", status=400)
            self._bad_request(unreadable("BadHttpMessage"))

    def on_chunk_header(self) -> None:
        self.chunks_seen += 1

    def on_headers_complete(self) -> None:
        if self.hand_over:
            return
        self.headers_done = True
        parser = self.parser
        url = self.url
        if (parser.get_method() != b"POST" or parser.get_http_version() != "1.1" or parser.should_upgrade()
                or (url != INGEST_PATH and not url.startswith(b"/v1/events?")) or b"host" not in self.single_seen):
            self.hand_over = True
            return
        self.chunks = None  # a plain ingest from here on: nothing of it is handed over
        if self.content_length is not None and self.content_length > self.front.max_body:
            self._too_large()

    def on_body(self, body: bytes) -> None:
        if self.hand_over or self.closing:
            return
        self.body_size += len(body)
        if self.body_size > self.front.max_body:
            self._too_large()
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.hand_over or self.closing:
            return
        self.in_message = False
        self.completed_in_read = True
        self.read_in_message = 0
        answer = _Answer(close=not self.parser.should_keep_alive())
        self.owed.append(answer)
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        try:
            # admitted here, in request order: a key's rate counts the requests as they came
            key = admit(self.front.runtime.live, self.api_key, self.authorization, "/v1/events")
        except RequestError as exc:
            self._settle(answer, *refusal(exc))
        else:
            answer.task = asyncio.get_running_loop().create_task(self._ingest(answer, key, body))
        if answer.close:
            self.closing = True
        self._reset()
        if len(self.owed) >= MAX_PIPELINED:
            self._read_or_not()

    # ------------------------------------------------------------------ answering

    async def _ingest(self, answer: _Answer, key: ApiKey, body: bytes) -> None:
        runtime = self.front.runtime
        started = time.perf_counter()  # from admission on, as the route's timer runs inside the guard's auth
        headers: dict[str, str] | None = None
        try:
            refuse_when_stopping(runtime)
            status, data = await accept_body(runtime, key, body)
        except Exception as exc:  # answered as the route's guard answers it
            status, data, headers = failure(exc, "POST", "/v1/events")
        runtime.metrics.ingest_finished(time.perf_counter() - started)
        self._settle(answer, status, data, headers)

    def _settle(self, answer: _Answer, status: int, data: Any, headers: dict[str, str] | None) -> None:
        answer.data = self._response(status, data, headers, answer.close)
        self._write_ready()

    def _response(self, status: int, data: Any, headers: dict[str, str] | None, close: bool) -> bytes:
        body = orjson.dumps(data)
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nDate: %s\r\n" % (
            status, _REASONS.get(status, b"Unknown"), len(body), self.front.date())
        if headers:
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
        if close:
            head += b"Connection: close\r\n"
        return head + b"\r\n" + body

    def _write_ready(self) -> None:
        """Write the answers at the head of the line that are ready; a later one waits for an earlier one."""
        transport = self.transport
        owed = self.owed
        while owed and owed[0].data is not None:
            answer = owed.popleft()
            if transport is not None and not transport.is_closing():
                transport.write(answer.data)  # type: ignore[arg-type]
            if answer.close:
                owed.clear()  # nothing after a closing answer is sent; their events are committed regardless
                self._close_transport()
                return
        self.last_active = time.monotonic()
        if owed:
            return
        if self.hand_over and self.chunks is not None:
            self._give_to_aiohttp()
        elif self.closing:
            self._close_transport()
        else:
            self._read_or_not()

    def _refuse(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        """Answer after whatever is owed, then close: the rest of the connection cannot be read safely."""
        self.closing = True
        self.owed.append(_Answer(self._response(status, data, headers, True), close=True))
        self._write_ready()

    def _bad_request(self, message: str) -> None:
        self._refuse(400, error_body(ERROR_CODES[400], message))

    def _too_large(self) -> None:
        """The answers aiohttp's route gives the same request, in its order: the key first, then whether
        alertd is stopping, then the size. The unread body leaves the connection unusable either way."""
        runtime = self.front.runtime
        try:
            admit(runtime.live, self.api_key, self.authorization, "/v1/events")
            refuse_when_stopping(runtime)
        except RequestError as exc:
            self._refuse(*refusal(exc))
            return
        runtime.metrics.ingest_finished(0.0)  # the route's timer sees its 413 too
        self._refuse(413, error_body("too_large", too_large(self.front.max_body)))

    def _read_or_not(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.lingering:
            return
        stop = self.write_paused or len(self.owed) >= MAX_PIPELINED or self.closing
        if stop and not self.reading_paused:
            transport.pause_reading()
            self.reading_paused = True
        elif not stop and self.reading_paused:
            transport.resume_reading()
            self.reading_paused = False

    def _give_to_aiohttp(self) -> None:
        transport = self.transport
        assert transport is not None and self.chunks is not None
        self.front.forget(self)
        self.transport = None
        if transport.is_closing():
            return
        protocol = self.front.aiohttp_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.reading_paused:
            transport.resume_reading()
        protocol.data_received(b"".join(self.chunks))

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        self._close_transport(linger=False)

    def close_when_answered(self) -> None:
        self.closing = True
        if not self.owed:
            # nothing is owed: a request still arriving was never acknowledged, and its sender retries it
            self._close_transport(linger=False)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.front.forget(self)

    def _close_transport(self, linger: bool = True) -> None:
        """Close after the last answer. A client may still be sending (the rest of a body refused as too
        large, requests behind a refused one): closing a socket with unread bytes makes the kernel answer
        with a reset, which can destroy the answer before the client reads it. So the sending side is shut
        first, and what still arrives is read and dropped until the client closes too, LINGER_S at most."""
        self.closing = True
        transport = self.transport
        if transport is None or transport.is_closing():
            self.front.forget(self)
            return
        if not linger or self.lingering or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = 1
        transport.write_eof()
        if self.reading_paused:
            transport.resume_reading()
            self.reading_paused = False
        asyncio.get_running_loop().call_later(LINGER_S, transport.close)

    def _discard(self, size: int) -> None:
        self.lingering += size
        if self.lingering > LINGER_BYTES and self.transport is not None:
            self.transport.abort()


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}

