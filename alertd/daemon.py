"""Wires it all: open the store, build channels, start dispatch, serve HTTP; on SIGTERM drain and stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from functools import partial

import aiohttp
import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver

from alertd import sdnotify
from alertd.api.app import build_app
from alertd.api.front import KEEPALIVE_TIMEOUT, Front
from alertd.api.manage import reload_from_file
from alertd.api.protocol import Runner
from alertd.api.state import Runtime
from alertd.changes import Changes
from alertd.channels import HttpSender
from alertd.channels.wire import WirePool
from alertd.clock import Clock, SystemClock
from alertd.config import Config, ConfigError, split_listen
from alertd.dispatch import Dispatcher
from alertd.incidents import Incidents
from alertd.ingest import Ingest
from alertd.listening import BACKLOG, bind_listen
from alertd.live import Live, build_snapshot
from alertd.metrics import NO_METRICS, MetricHooks, Metrics
from alertd.netguard import GuardedResolver, NetPolicy, make_connector
from alertd.redact import compile_sensitive
from alertd.replay import Replayer
from alertd.retry import RetryPolicy
from alertd.scheduler import Scheduler
from alertd.silences import SilenceBook
from alertd.store import Store, admin_ops, silence_ops

log = structlog.get_logger("alertd")
SHUTDOWN_TIMEOUT_S = 2.0  # for answers still owed on open connections, once draining is done
IDEMPOTENCY_PURGE_S = 3600.0
KEY_FLUSH_S = 60.0


class Daemon:
    # the name service both HTTP clients resolve through, behind the same guard; None: the system's
    name_service: AbstractResolver | None = None

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        s = config.settings
        self.store = Store(s.storage.path, s.storage.synchronous)
        self.policy = NetPolicy.from_strings(s.net.allow_private)
        self.metrics: MetricHooks = Metrics() if s.metrics.enabled else NO_METRICS
        self.store.writer.on_commit = self.metrics.store_committed
        self.watchdog = sdnotify.Watchdog()
        self.session: aiohttp.ClientSession | None = None
        self.http: HttpSender | None = None
        self.runner: web.AppRunner | None = None
        self.runtime: Runtime | None = None
        self.bound_port: int | None = None
        self._stop = asyncio.Event()
        self._housekeeping: asyncio.Task[None] | None = None
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
        self.front: Front | None = None

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            # whatever did start is drained and closed: a failed start leaves no task, thread or socket
            # behind (an open reader thread would keep the process from ever exiting)
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.config.settings
        host, port = split_listen(s.server.listen)
        self._sockets = bind_listen(host, port)  # first: nothing is sent by a daemon that cannot serve
        await self.store.open()
        self.session = aiohttp.ClientSession(connector=make_connector(self.policy, inner=self.name_service,
                                                                      limit=0), auto_decompress=False)
        self.http = HttpSender(self.session, self.policy,
                               WirePool(self.policy, GuardedResolver(self.policy, self.name_service)))
        live = Live(await build_snapshot(self.config, self.store), self.http)
        retry = RetryPolicy(s.dispatch.max_attempts, s.dispatch.backoff_base, s.dispatch.backoff_cap)
        dispatcher = Dispatcher(self.store, live.channels, retry, window=s.dispatch.window,
                                public_url=s.server.public_url)
        live.listeners.append(dispatcher.update_channels)
        silences = SilenceBook()
        await silence_ops.apply_config(silences, self.store, s.silences)
        ingest = Ingest(self.store, dispatcher, lambda: live.snapshot.routes, compile_sensitive(s.redact.keys),
                        silences.current)
        scheduler = Scheduler(self.store, dispatcher, ingest.prepare, self.clock,
                              retention_days=s.storage.retention_days,
                              audit_retention_days=s.scheduler.audit_retention_days,
                              outcome_failure_threshold=s.scheduler.outcome_failure_threshold)
        incidents = Incidents(self.store, dispatcher, lambda: live.snapshot.routes, ingest.prepare, self.clock,
                              s.server.public_url, s.scheduler.link_ttl)
        scheduler.attach(incidents)
        dispatcher.links = incidents.links_for
        ingest.incidents = incidents
        dispatcher.metrics = ingest.metrics = self.metrics
        self.metrics.watch(dispatcher, scheduler)
        scheduler.committed = incidents.committed = ingest.committed
        self.runtime = Runtime(
            config=self.config, store=self.store, dispatcher=dispatcher, ingest=ingest,
            replayer=Replayer(self.store, dispatcher, live), live=live, changes=Changes(live, self.store),
            scheduler=scheduler, incidents=incidents, silences=silences, started_at=time.time(),
            metrics=self.metrics)
        # the scheduler first: it loads the incidents' link key and open links, which the backlog the
        # dispatcher sends at once must carry; what its timers emit meanwhile waits in the lanes
        await scheduler.start(s.checks)
        await dispatcher.start()
        self._housekeeping = asyncio.create_task(self._housekeep(), name="housekeeping")
        self.runner = Runner(build_app(self.runtime), access_log=None, handle_signals=False,
                             shutdown_timeout=SHUTDOWN_TIMEOUT_S, keepalive_timeout=KEEPALIVE_TIMEOUT)
        await self.runner.setup()
        assert self.runner.server is not None
        # connections are the front's first: it answers plain ingest, and hands aiohttp everything else
        self.front = Front(self.runtime, self.runner.server, s.server.max_body_bytes)
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            self._servers.append(await loop.create_server(self.front, sock=sock, backlog=BACKLOG))
        self.bound_port = int(self._sockets[0].getsockname()[1])
        log.info("listening", host=host, port=self.bound_port, channels=len(live.channels),
                 routes=len(live.snapshot.route_decls), keys=len(live.snapshot.keyring))

    async def _housekeep(self) -> None:
        """Every minute: remember when API keys were last used; every hour: drop expired idempotency keys."""
        last_purge = 0.0
        while True:
            await asyncio.sleep(KEY_FLUSH_S)
            try:
                assert self.runtime is not None
                used = dict(self.runtime.live.key_last_used)
                if used:
                    await self.store.writer.submit(partial(admin_ops.touch_keys, last_used=used))
                sdnotify.status(self.status_line())
                if time.time() - last_purge >= IDEMPOTENCY_PURGE_S:
                    last_purge = time.time()
                    removed = await self.store.purge_idempotency()
                    if removed:
                        log.info("idempotency_keys_purged", count=removed)
                    closed = await self.store.writer.submit(partial(silence_ops.purge_dedup, now=time.time()))
                    if closed:
                        log.info("dedup_windows_purged", count=closed)
            except Exception:
                log.exception("housekeeping_failed")

    async def reload(self) -> None:
        """SIGHUP: re-read the TOML; a broken file is rejected whole and the running config kept."""
        assert self.runtime is not None
        try:
            await reload_from_file(self.runtime)
            sdnotify.status("reloaded; " + self.status_line())
        except ConfigError as exc:
            log.error("reload_rejected", error=str(exc))
            sdnotify.status(f"reload rejected, running config kept: {exc}")
        except Exception:
            log.exception("reload_failed")

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        await self.start()
        sdnotify.ready(status=self.status_line())
        self.watchdog.start()
        await self._stop.wait()
        sdnotify.stopping(status=f"draining: attempts in flight get up to {self.config.server.drain_timeout:g}s")
        await self.stop()
        await self.watchdog.stop()

    def status_line(self) -> str:
        """One line for `systemctl status`: where alertd listens and how much work it holds."""
        assert self.runtime is not None
        dispatcher = self.runtime.dispatcher
        return (f"listening on port {self.bound_port}; {len(self.runtime.live.channels)} channels; "
                f"{sum(dispatcher.depth_by_severity().values())} queued, {dispatcher.in_flight} in flight")

    async def stop(self) -> None:
        timeout = self.config.server.drain_timeout
        if self.runtime is not None:  # a start that failed before anything ran has nothing to drain: no noise
            log.info("draining", timeout_s=timeout)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.runtime is not None:
            self.runtime.accepting = False  # ingest answers 503 from here on
            await self.runtime.scheduler.stop()
            finished = await self.runtime.dispatcher.drain(timeout)
            log.info("drained", all_attempts_finished=finished)
        for server in self._servers:
            server.close()  # no new connection from here on
        if self.front is not None:
            await self.front.close(SHUTDOWN_TIMEOUT_S)
        if self.runner is not None:
            await self.runner.cleanup()  # the connections handed to aiohttp
        if self.http is not None:
            await self.http.close()
        if self.session is not None:
            await self.session.close()
        for sock in self._sockets:  # served ones are closed with their server already; this is for a failed start
            sock.close()
        await self.store.close()
        if self.runtime is not None:
            log.info("stopped")

