"""End-to-end fixtures: the daemon as a real subprocess, receivers as real aiohttp servers on 127.0.0.1.

- `Receiver` records every request (method, path, headers, body bytes, arrival time) and answers from a
  per-path script: `receiver.script("/hook", 500, 200)` answers 500 once, then 200 for ever (the last
  entry repeats). An entry is a status code, a `Reply` (status, body, headers, `delay` for a slow
  receiver, `hang` for one that holds the request until the receiver closes), or a callable taking the
  recorded `Request` and returning either.
- `start_daemon(...)` writes a TOML config into tmp_path (storage in tmp_path, listening on a port the
  kernel picks, read back from the daemon's `listening` log line, `[net] allow_private = ["127.0.0.0/8"]`,
  short backoffs, a producer key), starts `python -m alertd serve` with ALERTD_ADMIN_KEY set, and waits
  for /health. On teardown it SIGTERMs the daemon (killing it after 10 s), and asserts exit code 0, no
  traceback in its stderr (unless allowed) and no secret of ours in its stderr or in any response body
  the daemon sent to the tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

# Distinctive values: any of them showing up in a log line or a response body is a leak.
PRODUCER_KEY = "alertd_e2e_producer_Qz7vK2mW9xLp4RtN"
ADMIN_KEY = "alertd_e2e_admin_Hs3Jd8Fq1WcZ6yBv"
SCOPED_KEY = "alertd_e2e_scoped_Pn5Tg2Lx7KeR9uMa"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"e2e standard secret Vq4Nr8Ty2Kw6").decode()
E11_SECRET = "e11_e2e_secret_Mf6Bz1Xc9Dq3Wj7S"
SECRETS = (PRODUCER_KEY, ADMIN_KEY, SCOPED_KEY, STANDARD_SECRET, STANDARD_SECRET.removeprefix("whsec_"),
           E11_SECRET)

DEFAULT_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
HANG_MAX_S = 30.0
REPO = Path(__file__).resolve().parents[2]

# Test modules import helpers with `from tests.integration.conftest import …`; pytest loads this file as
# `conftest`. One module object under both names keeps one `Reply` class (isinstance) and one set of values.
sys.modules.setdefault("tests.integration.conftest", sys.modules[__name__])


# ------------------------------------------------------------------------------------------ polling


async def wait_for(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
                   interval: float = POLL_INTERVAL, what: str = "condition") -> Any:
    """Polls `predicate` (sync or async) until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; last value: {last!r}"[:2000])
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------------ receiver


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow receiver)
    hang: bool = False  # hold the request until the receiver closes (or HANG_MAX_S)


def slow(ms: float, status: int = 200) -> Reply:
    return Reply(status=status, delay=ms / 1000)


HANG = Reply(hang=True)

ScriptEntry = int | Reply | Callable[["Request"], "int | Reply | Awaitable[int | Reply]"]


@dataclass(frozen=True)
class Request:
    seq: int
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    arrived: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str | None:
        try:
            data = self.json()
        except ValueError:
            return None
        return data.get("id") if isinstance(data, dict) else None


class Receiver:
    """A local HTTP server standing in for a webhook endpoint."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.requests: list[Request] = []
        self._scripts: dict[str, list[ScriptEntry]] = {}
        self._default: ScriptEntry = 200
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()
        self._release = asyncio.Event()

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    def release(self) -> None:
        """Lets every hanging request answer now."""
        self._release.set()

    async def close(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *entries: ScriptEntry) -> None:
        """Answers for `path`, in order; the last one repeats."""
        assert entries, "give at least one answer"
        self._scripts[path] = list(entries)

    def default(self, entry: ScriptEntry) -> None:
        self._default = entry

    def at(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def event_ids(self, path: str | None = None) -> list[str | None]:
        return [r.event_id for r in self.requests if path is None or r.path == path]

    async def wait_for(self, predicate: Callable[[list[Request]], Any], timeout: float = DEFAULT_TIMEOUT,
                       what: str = "requests") -> Any:
        """Waits (woken by each arrival, not by polling) until predicate(requests) is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            self._arrived.clear()
            result = predicate(self.requests)
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; "
                                     f"{len(self.requests)} requests arrived")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def wait_count(self, count: int, path: str | None = None, timeout: float = DEFAULT_TIMEOUT
                         ) -> list[Request]:
        def enough(requests: list[Request]) -> list[Request] | None:
            found = [r for r in requests if path is None or r.path == path]
            return found if len(found) >= count else None

        return await self.wait_for(enough, timeout, what=f"{count} requests at {path or 'any path'}")

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        recorded = Request(len(self.requests), request.method, request.path,
                           {k.lower(): v for k, v in request.headers.items()}, body, time.monotonic())
        self.requests.append(recorded)
        self._arrived.set()
        reply = await self._reply_for(recorded)
        if reply.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), HANG_MAX_S)
        elif reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    async def _reply_for(self, request: Request) -> Reply:
        entries = self._scripts.get(request.path)
        entry = self._default
        if entries:
            entry = entries.pop(0) if len(entries) > 1 else entries[0]
        if callable(entry):
            entry = entry(request)
            if inspect.isawaitable(entry):
                entry = await entry
        return entry if isinstance(entry, Reply) else Reply(status=int(entry))  # type: ignore[arg-type]


@pytest.fixture
async def make_receiver() -> Any:
    """`await make_receiver()` starts one; `make_receiver(port=P, start=False)` makes one to start later."""
    made: list[Receiver] = []

    async def factory(port: int = 0, start: bool = True) -> Receiver:
        receiver = Receiver(port)
        made.append(receiver)
        if start:
            await receiver.start()
        return receiver

    factory.made = made  # type: ignore[attr-defined]
    yield factory
    for receiver in made:
        await receiver.close()


@pytest.fixture
async def receiver(make_receiver: Any) -> Receiver:
    return await make_receiver()


# ------------------------------------------------------------------------------------------ TOML


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def to_toml(config: dict[str, Any]) -> str:
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in config.items()
             if not isinstance(v, dict) and not _is_table_array(v)]
    for key, value in config.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())]
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{key}]]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items())]
    return "\n".join(lines) + "\n"


def webhook(name: str, url: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "url": url, **options}


def route(name: str, match: str, channels: Iterable[str], **options: Any) -> dict[str, Any]:
    return {"name": name, "match": match, "channels": list(channels), **options}


# ------------------------------------------------------------------------------------------ daemon


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTD_")}
    env.update(extra)
    return env


class DaemonProcess:
    def __init__(self, workdir: Path, name: str, config: dict[str, Any], http: aiohttp.ClientSession,
                 allow_traceback: bool = False, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.name = name
        self.config = config
        self.http = http
        self.allow_traceback = allow_traceback
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(to_toml(config))
        self.env = clean_env(ALERTD_ADMIN_KEY=ADMIN_KEY, **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.starts = 0
        self.stderr_paths: list[Path] = []
        self.exit_codes: list[int] = []
        self.sigterms_sent = 0
        self.bodies: list[bytes] = []  # every response body the daemon sent us, to grep for secrets

    # -- lifecycle

    @property
    def url(self) -> str:
        assert self.port is not None, "daemon not started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, timeout: float = 10.0) -> DaemonProcess:
        assert not self.running
        self.starts += 1
        stderr_path = self.workdir / f"{self.name}.{self.starts}.stderr"
        self.stderr_paths.append(stderr_path)
        with stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alertd", "serve", "--config", str(self.config_path)],
                cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout
        listening = await wait_for(lambda: self._listening_line(), timeout, what="the 'listening' log line")
        self.port = int(listening["port"])
        await wait_for(self._healthy, max(0.5, deadline - time.monotonic()), what="GET /health → 200")
        return self

    def _listening_line(self) -> dict[str, Any] | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode} while starting:\n{self.last_stderr}")
        return next((r for r in parse_log(self.last_stderr) if r.get("event") == "listening"), None)

    async def _healthy(self) -> bool:
        try:
            async with self.http.get(self.url + "/health") as response:
                body = await response.json()
                return response.status == 200 and body == {"status": "ok", "service": "alertd"}
        except aiohttp.ClientError:
            return False

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        if sig == signal.SIGTERM and self.proc.poll() is None:
            self.sigterms_sent += 1
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        proc = self.proc
        await wait_for(lambda: proc.poll() is not None, timeout, interval=0.02, what="the daemon to exit")
        code = proc.wait()
        self.exit_codes.append(code)
        self.proc = None
        return code

    async def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return self.exit_codes[-1] if self.exit_codes else 0
        self.send_signal(signal.SIGTERM)
        try:
            return await self.wait_exit(timeout)
        except AssertionError:
            self.send_signal(signal.SIGKILL)
            await self.wait_exit(5.0)
            raise AssertionError(f"daemon ignored SIGTERM for {timeout}s:\n{self.last_stderr}") from None

    async def kill9(self) -> None:
        self.send_signal(signal.SIGKILL)
        code = await self.wait_exit(5.0)
        assert code == -signal.SIGKILL

    async def restart(self) -> DaemonProcess:
        """A clean stop (exit 0) and a start on the same config and database."""
        if self.running:
            assert await self.stop() == 0
        return await self.start()

    # -- logs

    @property
    def last_stderr(self) -> str:
        return self.stderr_paths[-1].read_text(errors="replace") if self.stderr_paths else ""

    @property
    def stderr(self) -> str:
        """Everything every run of this daemon wrote to stderr."""
        return "".join(p.read_text(errors="replace") for p in self.stderr_paths if p.exists())

    def log_records(self) -> list[dict[str, Any]]:
        return parse_log(self.stderr)

    # -- HTTP

    async def request(self, method: str, path: str, *, key: str | None = None, json_body: Any = None,
                      data: bytes | None = None, headers: dict[str, str] | None = None,
                      params: dict[str, Any] | None = None) -> Response:
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("x-api-key", key)
        if json_body is not None:
            data = json.dumps(json_body).encode()
        if data is not None:
            sent.setdefault("content-type", "application/json")
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self.http.request(method, self.url + path, data=data, headers=sent, params=query) as response:
            body = await response.read()
        self.bodies.append(body)
        return Response(response.status, body, {k.lower(): v for k, v in response.headers.items()})

    async def post_events(self, body: Any = None, key: str | None = PRODUCER_KEY, *, data: bytes | None = None,
                          headers: dict[str, str] | None = None) -> Response:
        return await self.request("POST", "/v1/events", key=key, json_body=body, data=data, headers=headers)

    async def post_event(self, event: str, payload: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """One event that must be accepted (202); returns the accepted body."""
        response = await self.post_events({"event": event, "payload": payload or {}, **fields})
        assert response.status == 202, (response.status, response.body)
        return response.json()  # type: ignore[no-any-return]

    async def admin(self, method: str, path: str, **kw: Any) -> Response:
        return await self.request(method, path, key=ADMIN_KEY, **kw)

    async def admin_get(self, path: str, **params: Any) -> Any:
        response = await self.admin("GET", path, params=params)
        assert response.status == 200, (path, response.status, response.body)
        return response.json()

    async def event(self, event_id: str) -> dict[str, Any]:
        return await self.admin_get(f"/v1/admin/events/{event_id}")  # type: ignore[no-any-return]

    async def all_events(self, **filters: Any) -> list[dict[str, Any]]:
        return await self._all_pages("/v1/admin/events", "events", filters)

    async def all_deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        return await self._all_pages("/v1/admin/deliveries", "deliveries", filters)

    async def _all_pages(self, path: str, items: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.admin_get(path, limit=500, cursor=cursor, **filters)
            found.extend(page[items])
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
                       what: str = "condition") -> Any:
        return await wait_for(predicate, timeout, what=what)

    async def wait_event(self, event_id: str, predicate: Callable[[dict[str, Any]], Any],
                         timeout: float = DEFAULT_TIMEOUT, what: str = "the event's deliveries") -> dict[str, Any]:
        """Polls GET /v1/admin/events/{id} until predicate(event) holds; returns the event."""
        async def check() -> dict[str, Any] | None:
            event = await self.event(event_id)
            return event if predicate(event) else None

        return await wait_for(check, timeout, what=f"{what} ({event_id})")

    async def wait_settled(self, event_id: str, count: int | None = None, timeout: float = DEFAULT_TIMEOUT
                           ) -> dict[str, Any]:
        """Until every delivery of the event (and `count` of them, if given) is delivered or dead."""
        def settled(event: dict[str, Any]) -> bool:
            ds = event["deliveries"]
            return (count is None or len(ds) == count) and all(d["state"] in ("delivered", "dead") for d in ds)

        return await self.wait_event(event_id, settled, timeout, what="every delivery delivered or dead")

    # -- checks made at teardown

    def assert_clean(self) -> None:
        stderr = self.stderr
        drains = sum(1 for r in parse_log(stderr) if r.get("event") == "draining")
        assert drains <= self.sigterms_sent, (
            f"the daemon drained {drains} times but the test sent {self.sigterms_sent} SIGTERMs: "
            "another process signalled it (a broad pkill/killall on this machine?)")
        if not self.allow_traceback:
            assert "Traceback" not in stderr, f"traceback in the daemon's stderr:\n{stderr[-4000:]}"
        for secret in SECRETS:
            assert secret not in stderr, f"a secret ({secret[:10]}…) is in the daemon's stderr"
            for body in self.bodies:
                assert secret.encode() not in body, f"a secret ({secret[:10]}…) is in a response body: {body[:300]!r}"


def parse_log(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
async def start_daemon(tmp_path: Path, http: aiohttp.ClientSession, make_receiver: Any) -> Any:
    """`await start_daemon(channels=[...], routes=[...], **sections)` → a running DaemonProcess.

    Keyword sections (server, storage, net, dispatch, log, redact) are merged over the defaults; `keys`
    replaces the default producer key list; `env` adds ALERTD_* variables; `start=False` only writes the
    config.
    """
    daemons: list[DaemonProcess] = []

    async def factory(*, channels: Iterable[dict[str, Any]] = (), routes: Iterable[dict[str, Any]] = (),
                      keys: list[dict[str, Any]] | None = None, allow_traceback: bool = False,
                      env: dict[str, str] | None = None, start: bool = True, **sections: Any) -> DaemonProcess:
        name = f"alertd{len(daemons) + 1}"
        base: dict[str, Any] = {
            "server": {"listen": "127.0.0.1:0", "drain_timeout": "5s"},
            "storage": {"path": str(tmp_path / f"{name}.db")},
            "net": {"allow_private": ["127.0.0.0/8"]},
            "dispatch": {"backoff_base": "50ms", "backoff_cap": "200ms"},
            "keys": keys if keys is not None else [{"name": "producer", "key": PRODUCER_KEY}],
            "channels": list(channels),
            "routes": list(routes),
        }
        daemon = DaemonProcess(tmp_path, name, _merge(base, sections), http, allow_traceback, env)
        daemons.append(daemon)
        if start:
            await daemon.start()
        return daemon

    yield factory
    # Hanging requests answer first, so a drain never waits out a channel timeout.
    for receiver in make_receiver.made:
        receiver.release()
    codes = [await daemon.stop() for daemon in daemons if daemon.running]
    for daemon in daemons:
        daemon.assert_clean()
    assert all(code == 0 for code in codes), f"daemon exit codes on SIGTERM: {codes}"


async def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`python -m alertd ARGS` in a subprocess, off the event loop."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "alertd", *args], cwd=REPO, env=clean_env(),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


async def raw_http(port: int, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Sends exact request bytes (what curl would send) and reads one response with a Content-Length."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()
        await writer.wait_closed()
