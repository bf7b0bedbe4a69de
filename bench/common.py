"""Shared bench helpers: processes (alertd, baseline servers, receiver), load generators, stats.

Also runnable as a program: the servers and clients the benches start as *separate processes*, so
that the process being measured never shares its event loop with the load or the receiver:

    python bench/common.py receiver --port P           webhook receiver (200 fast; /_control, /_stats)
    python bench/common.py baseline-ingest --port P    plain aiohttp: read + orjson-parse, 202, no storing
    python bench/common.py floor-ingest --port P --db F --sync S
                                                       the baseline plus a group-commit writer: the durable floor
    python bench/common.py loadgen --url U ...         the Python load generator (when wrk is missing)
    python bench/common.py sender --url U --count N    bare aiohttp client, fixed pool of worker coroutines

Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
HOST = "127.0.0.1"

PRODUCER_KEY = "alertd_bench_producer_key_0123456789"
ADMIN_KEY = "alertd_bench_admin_key_0123456789abc"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CHANNEL = "bench-webhook"

# A CI-style event of about 300 bytes, as the brief and DESIGN.md §6 measure.
PAYLOAD: dict[str, Any] = {
    "repo": "platform/alertd", "pr": 4182, "run_id": "run_9f8e7d6c5b4a", "branch": "feature/group-commit",
    "commit": "3f9c2a1b7e6d5c4b3a29180f7e6d5c4b3a291807", "author": "jdoe", "job": "test (3.11)",
    "duration_s": 412.7, "attempt": 2, "message": "3 tests failed in test_dispatch.py",
}
EVENT = {"event": "pr.run.failed", "payload": PAYLOAD, "severity": "error"}
EVENT_BODY = json.dumps(EVENT, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------- misc


def log(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def ratio(alertd: float, baseline: float) -> float:
    return round(alertd / baseline, 3) if baseline > 0 else float("nan")


def emit(bench: str, alertd: float, baseline: float, target: float, unit: str, **details: Any) -> dict[str, Any]:
    """One JSON line per result; run_all.py keeps the first seven keys on its stdout, all in latest.json."""
    r = ratio(alertd, baseline)
    line = {"bench": bench, "alertd": round(alertd, 1), "baseline": round(baseline, 1), "ratio": r,
            "target": target, "ok": bool(r >= target) and details.pop("valid", True), "unit": unit, **details}
    print(json.dumps(line), flush=True)
    return line


def filesystem_of(path: Path) -> str:
    """'ext4 (/dev/vda)' for the mount holding `path`: tmpfs would make synchronous=full meaningless."""
    best, described = "", "unknown filesystem"
    target = str(path.resolve())
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            device, point, kind = line.split()[:3]
            if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best, described = point, f"{kind} ({device} on {point})"
    return described


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.02, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_json(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
              timeout: float = 30.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw else None


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    """A scratch directory on the real disk (not tmpfs), removed afterwards unless `keep` or a failure."""
    path = Path(tempfile.mkdtemp(prefix="alertd-bench-"))
    try:
        yield path
    except BaseException:
        print(f"kept scratch directory {path} (logs, databases) for the post-mortem", file=sys.stderr)
        raise
    if keep:
        log(f"kept scratch directory {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------ processes


class Proc:
    """A child process whose output goes to a file; stopped by its own pid, SIGTERM then SIGKILL."""

    def __init__(self, name: str, cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        # Hermetic: an ALERTD_* variable in the caller's shell would override the bench's config.
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("ALERTD_")}
        self.popen = subprocess.Popen(list(cmd), stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
                                      env={**clean, **(env or {})}, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"  {self.name} (pid {self.pid}) ignored SIGTERM for {timeout:.0f}s; killing it")
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check(self) -> None:
        if not self.alive():
            code = self.popen.returncode
            why = " (a clean shutdown: something outside the bench sent it SIGTERM/SIGINT?)" if code == 0 else ""
            raise RuntimeError(f"{self.name} (pid {self.pid}) exited with {code}{why}:\n{self.tail()}")


def helper(name: str, mode: str, port: int, scratch: Path, *extra: str) -> Proc:
    """Starts one of this module's servers as a separate process and waits until it listens."""
    proc = Proc(name, [PYTHON, str(Path(__file__).resolve()), mode, "--port", str(port), *extra],
                scratch / f"{name}.log")
    try:
        wait_until(lambda: proc.check() is None and port_open(port), 20, what=f"{name} on port {port}")
    except BaseException:
        proc.stop()
        raise
    return proc


def alertd_command(config: Path) -> list[str]:
    script = Path(PYTHON).with_name("alertd")
    base = [str(script)] if script.exists() else [PYTHON, "-m", "alertd"]
    return [*base, "serve", "--config", str(config)]


@dataclass
class DaemonConfig:
    port: int
    db: Path
    synchronous: str = "normal"
    webhook_url: str | None = None  # None: no channel and no route (ingest only, 0 deliveries)
    concurrency: int = 64
    drain_timeout: str = "1s"
    extra: dict[str, str] = field(default_factory=dict)

    def toml(self) -> str:
        text = f"""
[server]
listen = "{HOST}:{self.port}"
public_url = "http://{HOST}:{self.port}"
drain_timeout = "{self.drain_timeout}"

[storage]
path = "{self.db}"
synchronous = "{self.synchronous}"

[net]
allow_private = ["127.0.0.0/8"]

[log]
level = "warning"
format = "json"

[[keys]]
name = "bench-producer"
key = "{PRODUCER_KEY}"
events = ["*"]
"""
        if self.webhook_url is not None:
            text += f"""
[[channels]]
name = "{CHANNEL}"
type = "webhook"
url = "{self.webhook_url}"
signing = "standard"
secret = "{WEBHOOK_SECRET}"
timeout = "30s"
concurrency = {self.concurrency}

[[routes]]
name = "everything"
match = "*"
channels = ["{CHANNEL}"]
"""
        return text


class Daemon:
    """`alertd serve --config FILE` as a subprocess, with ALERTD_ADMIN_KEY set."""

    def __init__(self, config: DaemonConfig, scratch: Path, name: str = "alertd") -> None:
        self.config = config
        self.url = f"http://{HOST}:{config.port}"
        self.path = scratch / f"{name}.toml"
        self.path.write_text(config.toml())
        self.scratch = scratch
        self.name = name
        self.proc: Proc | None = None
        self.startup_s = float("nan")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> float:
        """Starts and waits for the first /health OK; returns the monotonic time it answered."""
        started = time.monotonic()
        env = {"ALERTD_ADMIN_KEY": ADMIN_KEY}
        if os.environ.get("BENCH_ALERTD_LOG_LEVEL"):  # e.g. info, to see alertd's own lines in its log
            env["ALERTD_LOG__LEVEL"] = os.environ["BENCH_ALERTD_LOG_LEVEL"]
        self.proc = Proc(self.name, alertd_command(self.path), self.scratch / f"{self.name}.log", env=env)
        proc = self.proc
        try:
            wait_until(lambda: proc.check() is None and http_json("GET", self.url + "/health", timeout=2)[0] == 200,
                       60, what="alertd /health")
        except BaseException:
            proc.stop()
            raise
        healthy = time.monotonic()
        self.startup_s = healthy - started
        return healthy

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        code = self.proc.stop(30)
        if code not in (0, None):
            log(f"  alertd exited with {code}:\n{self.proc.tail()}")
        return code

    def ready(self) -> dict[str, Any]:
        status, body = http_json("GET", self.url + "/ready", timeout=10)
        return body if isinstance(body, dict) else {"status": status}

    def wait_drained(self, timeout: float, interval: float = 0.1) -> float:
        """Polls /ready until no delivery is open; returns the monotonic time it saw that."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            self.proc.check()
            if self.ready().get("open_deliveries") == 0:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"deliveries still open after {timeout:.0f}s: {self.ready()}")
            time.sleep(interval)


def db_counts(path: Path) -> dict[str, int]:
    """Counts from the daemon's SQLite file, opened read-only (what a 202 promised is committed there)."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10)
    try:
        counts = {"events": conn.execute("SELECT count(*) FROM events").fetchone()[0],
                  "deliveries": conn.execute("SELECT count(*) FROM deliveries").fetchone()[0],
                  "attempts": conn.execute("SELECT count(*) FROM attempts").fetchone()[0]}
        for state, n in conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state"):
            counts[f"deliveries_{state}"] = n
        return counts
    finally:
        conn.close()


# ------------------------------------------------------------------------------------- load generators


@dataclass
class LoadResult:
    generator: str
    requests: int  # responses received
    ok: int  # 2xx responses
    non_2xx: int
    socket_errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        """2xx responses per second: an error answered fast must not count as throughput."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def summary(self) -> str:
        errors = f", {self.non_2xx} non-2xx, {self.socket_errors} socket errors" if (
            self.non_2xx or self.socket_errors) else ""
        return f"{self.rps:9.0f} req/s  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms{errors}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1)}


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "{key}"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,' ..
    '"status":%.0f,"timeout":%.0f,"p50_us":%.1f,"p99_us":%.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Samples `pid` until it exits, into `out` as collapsed stacks (`--format raw`), for profiling by hand."""
    tool = Path(PYTHON).with_name("py-spy")
    if not tool.exists():
        raise SystemExit("--profile needs py-spy: make bench-deps")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([str(tool), "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                             "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "wrk"
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip() if (
        out.stdout or out.stderr) else "wrk"


class LoadGenerator:
    """The same generator (same connections, body and headers) for alertd and its baseline."""

    def __init__(self, kind: str, scratch: Path, connections: int = 32, threads: int = 1,
                 body: bytes = EVENT_BODY, key: str = PRODUCER_KEY) -> None:
        self.kind = kind
        self.connections = connections
        self.threads = threads
        self.body = body
        self.key = key
        self.scratch = scratch
        self.script = scratch / "post.lua"
        self.body_file = scratch / "body.json"
        self.body_file.write_bytes(body)
        if kind == "wrk":
            self.script.write_text(WRK_SCRIPT.format(body=body.decode(), key=key))

    @classmethod
    def pick(cls, wanted: str, scratch: Path, connections: int = 32) -> LoadGenerator:
        if wanted == "wrk" and wrk_path() is None:
            raise SystemExit("--generator wrk: wrk is not on PATH (apt-get install -y wrk)")
        kind = "wrk" if wanted in ("auto", "wrk") and wrk_path() is not None else "python"
        return cls(kind, scratch, connections)

    def describe(self) -> str:
        if self.kind == "wrk":
            return (f"{wrk_version()}, {self.threads} thread, {self.connections} connections, keep-alive, "
                    f"Lua POST script ({len(self.body)}-byte body)")
        why = "wrk not found" if wrk_path() is None else "chosen with --generator python"
        return (f"python fallback (aiohttp client on uvloop in a separate process, {self.connections} "
                f"keep-alive connections, {len(self.body)}-byte body; {why}). It costs far more CPU per "
                f"request than wrk, so figures are not comparable with wrk runs")

    def run(self, url: str, duration: float) -> LoadResult:
        if self.kind == "wrk":
            return self._wrk(url, duration)
        return self._python(url, duration)

    def _wrk(self, url: str, duration: float) -> LoadResult:
        cmd = ["wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{max(1, round(duration))}s",
               "--timeout", "10s", "--latency", "-s", str(self.script), url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout[-500:]}")
        data = json.loads(line.removeprefix("BENCH_JSON "))
        requests = int(data["requests"])
        # wrk counts a response with status > 399 in errors.status; alertd never answers 3xx here.
        return LoadResult("wrk", requests, requests - int(data["status"]), int(data["status"]),
                          int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
                          data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000)

    def _python(self, url: str, duration: float) -> LoadResult:
        cmd = [PYTHON, str(Path(__file__).resolve()), "loadgen", "--url", url, "--duration", str(duration),
               "--connections", str(self.connections), "--body-file", str(self.body_file), "--key", self.key]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        if out.returncode != 0:
            raise RuntimeError(f"python load generator failed ({out.returncode}): {out.stderr[-800:]}")
        data = json.loads(out.stdout.strip().splitlines()[-1])
        return LoadResult("python", **data)


# ------------------------------------------------------------------- separate-process programs (main)


def _uvloop_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # alertd falls back to asyncio's loop too (alertd/cli.py run_async)
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


async def _serve_until_term(app: Any, port: int) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, HOST, port, backlog=1024, reuse_address=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


async def _receiver(port: int) -> None:
    """Webhook receiver: reads the body, answers 200 with no body. `POST /_control?hold=1` makes it
    hold every request open (so a daemon's attempts stay in flight, uncommitted); `?reset=1` zeroes
    the counters. `GET /_stats`: count of 2xx answers and the wall-clock times of the first and last."""
    from aiohttp import web

    stats: dict[str, Any] = {"count": 0, "first": None, "last": None, "held": 0, "hold": False,
                             "body_bytes": 0, "header_bytes": 0}
    never = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        stats["body_bytes"] = len(body)
        stats["header_bytes"] = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
        if stats["hold"]:
            stats["held"] += 1
            await never.wait()
        now = time.time()
        if stats["first"] is None:
            stats["first"] = now
        stats["last"] = now
        stats["count"] += 1
        return web.Response(status=200)

    async def control(request: web.Request) -> web.Response:
        if "hold" in request.query:
            stats["hold"] = request.query["hold"] == "1"
        if request.query.get("reset") == "1":
            stats.update(count=0, first=None, last=None, held=0)
        return web.json_response(stats)

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    app = web.Application()
    app.router.add_route("*", "/hook", hook)
    app.router.add_post("/_control", control)
    app.router.add_get("/_stats", get_stats)
    await _serve_until_term(app, port)


async def _baseline_ingest(port: int) -> None:
    """The ingest baseline: what any aiohttp handler must do (read, parse with orjson, answer 202
    with a JSON body of alertd's shape), and nothing alertd adds (auth, validation, storing)."""
    import orjson
    from aiohttp import web

    async def post_events(request: web.Request) -> web.Response:
        data = orjson.loads(await request.read())
        body = orjson.dumps({"id": "evt_01JD0000000000000000000000", "event": data.get("event"),
                             "severity": data.get("severity", "info"), "deliveries": 0, "duplicate": False})
        return web.Response(body=body, status=202, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/events", post_events)
    await _serve_until_term(app, port)


async def _floor_ingest(port: int, db: Path, synchronous: str) -> None:
    """The durable floor: the baseline handler plus the smallest group commit that keeps a 202 honest
    (one row per event in a table shaped like alertd's, a writer task on the loop committing whatever
    queued since its last commit, fsync in a thread under `full`). No auth, validation, redaction or
    routing: alertd's ratio to this is what those cost; this one's ratio to the baseline, what storing costs."""
    import sqlite3

    import orjson
    from aiohttp import web

    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, name TEXT NOT NULL, severity INTEGER, "
                 "payload TEXT NOT NULL, created_at REAL NOT NULL)")
    checkpointer = sqlite3.connect(db, check_same_thread=False)
    queued: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
    wake = asyncio.Event()
    sequence = 0

    async def writer() -> None:
        nonlocal queued
        commits = 0
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.sleep(0)
            while queued:
                batch, queued = queued, []
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", [row for row, _ in batch])
                if synchronous == "full":
                    await asyncio.to_thread(conn.execute, "COMMIT")
                else:
                    conn.execute("COMMIT")
                for _, done in batch:
                    done.set_result(None)
                commits += 1
                if commits % 200 == 0:
                    await asyncio.to_thread(checkpointer.execute, "PRAGMA wal_checkpoint(PASSIVE)")

    async def post_events(request: web.Request) -> web.Response:
        nonlocal sequence
        data = orjson.loads(await request.read())
        sequence += 1
        done = asyncio.get_running_loop().create_future()
        queued.append(((f"evt_{sequence:026d}", data.get("event"), 2, orjson.dumps(data.get("payload")).decode(),
                        time.time()), done))
        wake.set()
        await done
        body = orjson.dumps({"id": f"evt_{sequence:026d}", "event": data.get("event"),
                             "severity": data.get("severity", "info"), "deliveries": 0, "duplicate": False})
        return web.Response(body=body, status=202, content_type="application/json")

    task = asyncio.create_task(writer())
    app = web.Application()
    app.router.add_post("/v1/events", post_events)
    try:
        await _serve_until_term(app, port)
    finally:
        task.cancel()


async def _loadgen(url: str, duration: float, connections: int, body: bytes, key: str) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    headers = {"content-type": "application/json", "x-api-key": key}
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            nonlocal errors
            while (t0 := time.perf_counter()) < deadline:
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {"requests": len(latencies), "ok": ok, "non_2xx": len(latencies) - ok, "socket_errors": errors,
            "duration_s": elapsed, "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000}


async def _sender(url: str, count: int, workers: int, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The dispatch baseline: `count` POSTs through a fixed pool of worker coroutines (DESIGN.md §6)."""
    import aiohttp

    todo = iter(range(count))
    failures = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        async def worker() -> None:
            nonlocal failures
            for _ in todo:
                async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=30)) as response:
                    await response.read()
                    failures += not 200 <= response.status < 300

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - start
    return {"count": count, "failures": failures, "elapsed_s": elapsed}


def webhook_request(delivery_id: int = 1) -> tuple[bytes, dict[str, str]]:
    """A request shaped like the one alertd's webhook channel sends for EVENT (body and header sizes)."""
    event_id = "evt_01JD5Z8Q6R4M2N0P8K6J4H2G0F"
    body = json.dumps({"id": event_id, "event": EVENT["event"], "severity": EVENT["severity"],
                       "payload": PAYLOAD, "created_at": "2026-01-02T03:04:05.678Z"},
                      separators=(",", ":")).encode()
    headers = {"content-type": "application/json", "user-agent": "alertd",
               "webhook-id": f"msg_{event_id.removeprefix('evt_')}_{delivery_id}",
               "webhook-timestamp": str(int(time.time())),
               "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="}
    return body, headers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench helper processes")
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("receiver", "baseline-ingest"):
        sub.add_parser(mode).add_argument("--port", type=int, required=True)
    floor = sub.add_parser("floor-ingest")
    floor.add_argument("--port", type=int, required=True)
    floor.add_argument("--db", type=Path, required=True)
    floor.add_argument("--sync", choices=("normal", "full"), default="normal")
    gen = sub.add_parser("loadgen")
    gen.add_argument("--url", required=True)
    gen.add_argument("--duration", type=float, default=10.0)
    gen.add_argument("--connections", type=int, default=32)
    gen.add_argument("--body-file", type=Path, required=True)
    gen.add_argument("--key", default=PRODUCER_KEY)
    send = sub.add_parser("sender")
    send.add_argument("--url", required=True)
    send.add_argument("--count", type=int, required=True)
    send.add_argument("--workers", type=int, default=64)
    args = parser.parse_args(argv)

    with _uvloop_runner() as runner:
        if args.mode == "receiver":
            runner.run(_receiver(args.port))
        elif args.mode == "baseline-ingest":
            runner.run(_baseline_ingest(args.port))
        elif args.mode == "floor-ingest":
            runner.run(_floor_ingest(args.port, args.db, args.sync))
        elif args.mode == "loadgen":
            result = runner.run(_loadgen(args.url, args.duration, args.connections, args.body_file.read_bytes(),
                                         args.key))
            print(json.dumps(result))
        else:
            body, headers = webhook_request()
            print(json.dumps(runner.run(_sender(args.url, args.count, args.workers, body, headers))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
