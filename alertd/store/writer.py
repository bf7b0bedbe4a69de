"""The one writer: owns the write connection and commits whatever has queued up since its last commit
as one transaction (group commit). One commit per batch, not per request, is what lets durable ingest
run near the speed of a handler that stores nothing (DESIGN.md §6)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from alertd.store.migrations import migrate

T = TypeVar("T")
MAX_BATCH_JOBS = 2000
CHECKPOINT_EVERY_COMMITS = 200
# Under `synchronous = full` a COMMIT waits for an fsync. While that averages under INLINE_SYNC_MAX_S (this
# machine: ~0.3 ms) it runs on the loop: handing it to a thread costs more than it blocks, because the
# result comes back only when the busy loop thread next lets go of the GIL (measured: 11.4-12.9k durable
# req/s through a thread, 15.6-16.4k on the loop). A slower disk would stall every connection for as long,
# so past INLINE_SYNC_MAX_S on average the fsync moves off the loop.
INLINE_SYNC_MAX_S = 0.002
PROBE_EVERY_COMMITS = 64
log = structlog.get_logger("alertd.store")

WriteOp = Callable[[sqlite3.Connection], Any]


class StoreUnavailable(Exception):
    """The store could not commit (disk full, read-only, locked). Nothing in the batch was written."""


@dataclass(slots=True)
class _Job:
    op: WriteOp
    future: asyncio.Future[Any]


def connect(path: Path, synchronous: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=OFF")  # integrity is kept by the single writer; FK checks cost a lookup per row
    return conn


class Writer:
    """Runs on the event loop: `submit` queues a write op; a writer task takes everything queued since
    its last commit and runs it as one transaction. Running the ops on the loop (not a thread) spares
    every commit a wait for the GIL, which under load is most of a request's latency. Only checkpoints
    leave the loop, and under `synchronous = full` the COMMIT too while its fsync averages over
    INLINE_SYNC_MAX_S."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self.healthy = True
        self.last_error: str | None = None
        self._pending: list[_Job] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._commits_since_checkpoint = 0
        self._sync_seconds = 0.0  # a moving average of how long a `full` COMMIT (its fsync) blocks
        self._commits_since_probe = 0
        self.on_open: list[Callable[[sqlite3.Connection], None]] = []
        # (seconds, operations) after each successful group commit
        self.on_commit: Callable[[float, int], None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = connect(self.path, self.synchronous)
        migrate(self._conn)
        # no checkpoint inside a COMMIT on the loop: they run from a thread, see _checkpoint
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpoint_conn = connect(self.path, self.synchronous)
        for hook in self.on_open:
            hook(self._conn)
        self._task = self._loop.create_task(self._run(), name="alertd-writer")

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        assert self._loop is not None, "writer not started"
        future: asyncio.Future[T] = self._loop.create_future()
        if self._task is None or self._task.done():  # closed (or dead): no one would ever settle it
            future.set_exception(StoreUnavailable("the store is closed"))
            return future
        self._pending.append(_Job(op, future))
        self._wake.set()
        return future

    async def close(self) -> None:
        """Commits what is queued, then stops."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task = None
        for conn in (self._conn, self._checkpoint_conn):
            if conn is not None:
                conn.close()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # One more turn of the loop lets the requests already read off their sockets queue their
            # rows too: fewer, larger commits (measured: +10 % durable ingest with 32 connections).
            await asyncio.sleep(0)
            while self._pending:
                jobs, self._pending = self._pending[:MAX_BATCH_JOBS], self._pending[MAX_BATCH_JOBS:]
                await self._commit(jobs)
            if self._commits_since_checkpoint >= CHECKPOINT_EVERY_COMMITS:
                await self._checkpoint()
            if self._closing and not self._pending:  # a job queued during a checkpoint is committed first
                await self._checkpoint()
                if not self._pending:
                    return

    async def _checkpoint(self) -> None:
        """PASSIVE: copies what it can of the WAL into the database without blocking the writer."""
        self._commits_since_checkpoint = 0
        conn = self._checkpoint_conn
        if conn is None:
            return
        try:
            await asyncio.to_thread(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("checkpoint_failed", error=str(exc))

    async def _commit(self, jobs: list[_Job]) -> None:
        assert self._conn is not None
        started = time.perf_counter()
        try:
            results = await self._transaction([job.op for job in jobs])
        except sqlite3.OperationalError as exc:
            self._fail_all(jobs, exc)
            return
        except Exception as exc:
            # One job's bug must not fail the others: run each alone so only the faulty one errs.
            if len(jobs) > 1:
                for job in jobs:
                    await self._commit([job])
                return
            self._settle(jobs, None, exc)
            return
        self.healthy, self.last_error = True, None
        self._commits_since_checkpoint += 1
        self._settle(jobs, results, None)
        if self.on_commit is not None:
            with contextlib.suppress(Exception):  # a metrics hook must never take the writer down
                self.on_commit(time.perf_counter() - started, len(jobs))

    async def _transaction(self, ops: list[WriteOp]) -> list[Any]:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = _run_merged(conn, ops)
            if self.synchronous != "full":
                conn.execute("COMMIT")  # WAL + NORMAL: appends to the WAL, no fsync
            elif self._sync_seconds <= INLINE_SYNC_MAX_S or self._commits_since_probe >= PROBE_EVERY_COMMITS:
                self._sync_seconds = _averaged(self._sync_seconds, _timed_commit(conn))
                self._commits_since_probe = 0
            else:
                # a slow disk: the fsync leaves the loop; nothing else touches this connection until it returns.
                # After PROBE_EVERY_COMMITS of these, one runs on the loop, to notice when the disk is fast again
                # (timed in the thread, the wait for the GIL on the way back would count too)
                self._commits_since_probe += 1
                await asyncio.to_thread(conn.execute, "COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _fail_all(self, jobs: list[_Job], exc: sqlite3.OperationalError) -> None:
        self.healthy, self.last_error = False, str(exc)
        log.error("store_commit_failed", error=str(exc), jobs=len(jobs))
        self._settle(jobs, None, StoreUnavailable(str(exc)))

    def _settle(self, jobs: list[_Job], results: list[Any] | None, error: BaseException | None) -> None:
        _resolve(jobs, results, error)


class Mergeable:
    """A write op that can run together with the ones of its kind queued beside it: one executemany for
    a whole group commit instead of one per request. `run_together` returns one result per op."""

    @classmethod
    def run_together(cls, conn: sqlite3.Connection, ops: list[Any]) -> list[Any]:
        raise NotImplementedError

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return type(self).run_together(conn, [self])[0]


def _timed_commit(conn: sqlite3.Connection) -> float:
    started = time.perf_counter()
    conn.execute("COMMIT")
    return time.perf_counter() - started


def _averaged(average: float, sample: float) -> float:
    return average + (sample - average) * 0.2


def _run_merged(conn: sqlite3.Connection, ops: list[WriteOp]) -> list[Any]:
    results: list[Any] = []
    index = 0
    while index < len(ops):
        op = ops[index]
        if not isinstance(op, Mergeable):
            results.append(op(conn))
            index += 1
            continue
        end = index + 1
        while end < len(ops) and type(ops[end]) is type(op):
            end += 1
        results.extend(type(op).run_together(conn, ops[index:end]))
        index = end
    return results


def _resolve(jobs: list[_Job], results: list[Any] | None, error: BaseException | None) -> None:
    for index, job in enumerate(jobs):
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            assert results is not None
            job.future.set_result(results[index])
