"""Shared pieces of the reliability suite: figures, process probes, network namespaces, raw misbehaving
servers, an in-process daemon on its own thread, and small async utilities."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import math
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from tests.integration.conftest import ADMIN_KEY, PRODUCER_KEY, DaemonProcess, _merge

T = TypeVar("T")

# scenario → {figure: value}; printed in the terminal summary by conftest.py
FIGURES: dict[str, dict[str, Any]] = {}


def record(scenario: str, **values: Any) -> None:
    FIGURES.setdefault(scenario, {}).update(values)


# ------------------------------------------------------------------------------------------ numbers


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------------------------------ /proc


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ------------------------------------------------------------------------------------------ daemons


def daemon_config(tmp_path: Path, name: str, *, channels: list[dict[str, Any]] | None = None,
                  routes: list[dict[str, Any]] | None = None, keys: list[dict[str, Any]] | None = None,
                  **sections: Any) -> dict[str, Any]:
    """The same defaults as tests/integration's start_daemon, for daemons built outside that fixture."""
    base: dict[str, Any] = {
        "server": {"listen": "127.0.0.1:0", "drain_timeout": "5s"},
        "storage": {"path": str(tmp_path / f"{name}.db")},
        "net": {"allow_private": ["127.0.0.0/8"]},
        "dispatch": {"backoff_base": "50ms", "backoff_cap": "200ms"},
        "keys": keys if keys is not None else [{"name": "producer", "key": PRODUCER_KEY}],
        "channels": list(channels or []),
        "routes": list(routes or []),
    }
    return _merge(base, sections)


async def ready(daemon: DaemonProcess) -> dict[str, Any]:
    async with daemon.http.get(daemon.url + "/ready") as response:
        return await response.json()  # type: ignore[no-any-return]


async def wait_quiet(daemon: DaemonProcess, timeout: float = 60.0) -> dict[str, Any]:
    """Until /ready says no delivery is open (every one delivered, dead or skipped)."""
    async def quiet() -> dict[str, Any] | None:
        body = await ready(daemon)
        return body if body["open_deliveries"] == 0 and body["in_flight"] == 0 else None

    return await daemon.wait_for(quiet, timeout, what="/ready open_deliveries == 0")  # type: ignore[no-any-return]


async def gather_limited(limit: int, coros: list[Awaitable[T]]) -> list[T]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[T]) -> T:
        async with semaphore:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))


async def missing_events(daemon: DaemonProcess, ids: list[str]) -> list[tuple[str, int]]:
    """GET /v1/admin/events/{id} for each id; the ones that are not 200."""
    async def status(event_id: str) -> tuple[str, int]:
        response = await daemon.admin("GET", f"/v1/admin/events/{event_id}")
        return event_id, response.status

    found = await gather_limited(16, [status(i) for i in ids])
    daemon.bodies.clear()  # thousands of event bodies holding only test payloads: keep teardown's secret scan short
    return [(i, s) for i, s in found if s != 200]


# ------------------------------------------------------------------------------------------ network namespaces

CLONE_NEWNET = 0x40000000
_ns_counter = itertools.count(1)


class NetNs:
    """A network namespace with only loopback up. `run(coro_fn)` runs a coroutine on a fresh event loop in
    a thread that has entered the namespace: its sockets, and the processes it starts (the daemon), live
    there, so nothing they do can reach beyond this namespace's 127.0.0.1/::1."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def create(cls) -> NetNs | None:
        if shutil.which("ip") is None or os.geteuid() != 0 or os.environ.get("RELIABILITY_NO_NETNS"):
            return None
        name = f"alertd-rel-{os.getpid()}-{next(_ns_counter)}"
        try:
            subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        ns = cls(name)
        try:
            subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True,
                           capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            ns.delete()
            return None
        return ns

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10, check=False)

    def run(self, fn: Callable[[], T]) -> T:
        """fn() in a thread that has entered the namespace (an async body: `lambda: asyncio.run(coro())`)."""
        return _in_thread(fn, self.name)


def _in_thread(fn: Callable[[], T], netns: str | None) -> T:
    result: dict[str, Any] = {}

    def body() -> None:
        try:
            if netns is not None:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(fd)
            result["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=body, name=f"isolated-{netns or 'root'}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


def isolated(ns: NetNs | None, fn: Callable[[], T]) -> T:
    """fn() in the namespace if there is one, else in a plain thread (same shape, no isolation)."""
    return ns.run(fn) if ns is not None else _in_thread(fn, None)


# ------------------------------------------------------------------------------------------ raw servers


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 that reads one HTTP request per connection, then misbehaves as told."""

    behaviour: Behaviour
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    requests: int = 0
    bytes_sent: int = 0
    closed_by_peer: int = 0
    per_connection: list[int] = field(default_factory=list)
    read_first: bool = True  # read a request before `behaviour` runs (False: it reads them, with next_request)
    heads: list[bytes] = field(default_factory=list)  # the heads next_request read
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> RawServer:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/hook") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if not self.read_first or await read_request(reader):
                self.requests += self.read_first
                await self.behaviour(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_peer += 1
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def next_request(self, reader: asyncio.StreamReader) -> bytes:
        """The next request's body; its head is kept in `heads`. IncompleteReadError once the peer is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        self.requests += 1
        return await reader.readexactly(_content_length(head))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None


async def read_request(reader: asyncio.StreamReader) -> bool:
    """Reads one request's head and Content-Length body. False if the peer sent nothing."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
    except (asyncio.IncompleteReadError, TimeoutError):
        return False
    length = _content_length(head)
    if length:
        await reader.readexactly(length)
    return True


def _content_length(head: bytes) -> int:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip())
    return 0


async def reset_after_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\npartial")
    await writer.drain()
    await asyncio.sleep(0.05)
    sock = writer.get_extra_info("socket")
    if sock is not None:  # SO_LINGER 0: the close is a RST, not a FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
    await reader.read()  # until the client gives up and closes


async def one_byte_per_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 120\r\n\r\n")
    await writer.drain()
    for _ in range(120):
        writer.write(b"x")
        await writer.drain()
        server.bytes_sent += 1
        await asyncio.sleep(1.0)


HUGE_BYTES = 100 * 1024 * 1024


async def huge_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer) -> None:
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {HUGE_BYTES}"
                 "\r\n\r\n".encode())
    chunk = b"\0" * 65536
    sent = 0
    try:
        while sent < HUGE_BYTES:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    finally:
        server.bytes_sent += sent
        server.per_connection.append(sent)


class ConnectionCounter:
    """Listens on host:port and only counts who connects (and closes at once). Must see nothing in the SSRF
    tests."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host, self.port = host, port
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> ConnectionCounter:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def next_request(self, reader: asyncio.StreamReader) -> bytes:
        """The next request's body; its head is kept in `heads`. IncompleteReadError once the peer is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        self.requests += 1
        return await reader.readexactly(_content_length(head))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def self_signed_cert(directory: Path) -> tuple[Path, Path] | None:
    """A throwaway self-signed certificate for 127.0.0.1 (nobody trusts it), or None without openssl."""
    if shutil.which("openssl") is None:
        return None
    cert, key = directory / "self-signed.pem", directory / "self-signed.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


# ------------------------------------------------------------------------------------------ in-process daemon


class ThreadedDaemon:
    """alertd's Daemon in this process, on its own event loop in a thread, so synchronous code (hypothesis
    tests) can talk to it over real HTTP on 127.0.0.1."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.loop: asyncio.AbstractEventLoop | None = None
        self.daemon: Any = None
        self.port: int | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="alertd-inprocess", daemon=True)

    def start(self) -> ThreadedDaemon:
        self._thread.start()
        if not self._started.wait(20):
            raise AssertionError("in-process daemon did not start in 20 s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from alertd.config import load_config
        from alertd.daemon import Daemon

        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.daemon = Daemon(load_config(self.config_path))
            await self.daemon.start()
            self.port = self.daemon.bound_port
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self._stop.wait()
        await self.daemon.stop()

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def inprocess_toml(tmp_path: Path, extra: str = "", *, admin_key: str = ADMIN_KEY,
                   producer_key: str = PRODUCER_KEY) -> Path:
    path = tmp_path / "inprocess.toml"
    path.write_text(f"""
admin_key = {json.dumps(admin_key)}
[server]
listen = "127.0.0.1:0"
drain_timeout = "2s"
[storage]
path = {json.dumps(str(tmp_path / 'inprocess.db'))}
synchronous = "normal"
[net]
allow_private = []
[log]
level = "error"
[[keys]]
name = "producer"
key = {json.dumps(producer_key)}
events = ["*"]
{extra}
""")
    return path


# ------------------------------------------------------------------------------------------ small clients


async def post_json(session: aiohttp.ClientSession, url: str, body: Any, key: str = PRODUCER_KEY,
                    timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    async with session.post(url, data=json.dumps(body).encode(), timeout=aiohttp.ClientTimeout(total=timeout),
                            headers={"x-api-key": key, "content-type": "application/json"}) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, await response.read()


def assert_error_shape(body: bytes, status: int, code: str | None = None) -> dict[str, Any]:
    """The documented error body: {"error": {"code", "message", "field"?}} and nothing else."""
    data = json.loads(body)
    assert isinstance(data, dict) and set(data) == {"error"}, (status, body[:300])
    error = data["error"]
    assert isinstance(error, dict) and {"code", "message"} <= set(error) <= {"code", "message", "field"}, body[:300]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), body[:300]
    assert "Traceback" not in error["message"]
    if "field" in error:
        assert isinstance(error["field"], str)
    if code is not None:
        assert error["code"] == code, (status, error)
    return error  # type: ignore[no-any-return]
