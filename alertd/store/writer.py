"""The one writer: a thread that owns the write connection and commits whatever has queued up
since its last commit as one transaction (group commit). One commit per batch, not per request,
is what lets durable ingest run near the speed of a handler that stores nothing (DESIGN.md §6)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from alertd.store.migrations import migrate

T = TypeVar("T")
MAX_BATCH_JOBS = 2000
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
    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self.healthy = True
        self.last_error: str | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self.on_open: list[Callable[[sqlite3.Connection], None]] = []
        # (seconds, operations) after each successful group commit; called on the writer thread
        self.on_commit: Callable[[float, int], None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = connect(self.path, self.synchronous)
        migrate(self._conn)
        for hook in self.on_open:
            hook(self._conn)
        self._thread = threading.Thread(target=self._run, name="alertd-writer", daemon=True)
        self._thread.start()

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        assert self._loop is not None, "writer not started"
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Job(op, future))
        return future

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        if self._conn is not None:
            self._conn.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < MAX_BATCH_JOBS:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            self._commit(jobs)
            if stop:
                return

    def _commit(self, jobs: list[_Job]) -> None:
        assert self._conn is not None
        started = time.perf_counter()
        try:
            results = self._transaction([job.op for job in jobs])
        except sqlite3.OperationalError as exc:
            self._fail_all(jobs, exc)
            return
        except Exception as exc:
            # One job's bug must not fail the others: run each alone so only the faulty one errs.
            if len(jobs) > 1:
                for job in jobs:
                    self._commit([job])
                return
            self._settle(jobs, None, exc)
            return
        self.healthy, self.last_error = True, None
        self._settle(jobs, results, None)
        if self.on_commit is not None:
            with contextlib.suppress(Exception):  # a metrics hook must never take the writer thread down
                self.on_commit(time.perf_counter() - started, len(jobs))

    def _transaction(self, ops: list[WriteOp]) -> list[Any]:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = _run_merged(conn, ops)
            conn.execute("COMMIT")
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
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): nobody is waiting any more
            self._loop.call_soon_threadsafe(_resolve, jobs, results, error)


class Mergeable:
    """A write op that can run together with the ones of its kind queued beside it: one executemany for
    a whole group commit instead of one per request. `run_together` returns one result per op."""

    @classmethod
    def run_together(cls, conn: sqlite3.Connection, ops: list[Any]) -> list[Any]:
        raise NotImplementedError

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return type(self).run_together(conn, [self])[0]


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
