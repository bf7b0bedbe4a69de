"""The only package that speaks SQL. Writes go through the one Writer; reads through a Reader."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from alertd.model import Delivery, Event, Origin
from alertd.store import ops
from alertd.store.ops import AttemptRecord, NewEvent, Stored
from alertd.store.reads import DeliveryFilter, EventFilter, Reader
from alertd.store.writer import Mergeable, StoreUnavailable, Writer

__all__ = ["AttemptRecord", "DeliveryFilter", "EventFilter", "NewEvent", "Store", "StoreUnavailable", "Stored"]


class InsertEvents(Mergeable):
    """Concurrent ingests queued together are inserted with one executemany per table."""

    def __init__(self, items: Sequence[NewEvent], ids: ops.DeliveryIds, now: float) -> None:
        self.items, self.ids, self.now = items, ids, now

    @classmethod
    def run_together(cls, conn: sqlite3.Connection, batch: list[InsertEvents]) -> list[list[Stored]]:
        stored = ops.insert_events(conn, [item for op in batch for item in op.items], batch[0].ids, batch[-1].now)
        results, start = [], 0
        for op in batch:
            results.append(stored[start:start + len(op.items)])
            start += len(op.items)
        return results


class RecordAttempt(Mergeable):
    """Attempts finishing together (a lane's workers, every lane) are recorded with one executemany per
    statement. One with a fallback to add is not mergeable: see Store.record_attempt."""

    def __init__(self, record: AttemptRecord, now: float) -> None:
        self.record, self.now = record, now

    @classmethod
    def run_together(cls, conn: sqlite3.Connection, batch: list[RecordAttempt]) -> list[list[Delivery]]:
        ops.record_attempts(conn, [(op.record, op.now) for op in batch])
        return [[] for _ in batch]


class Store:
    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = path
        self.writer = Writer(path, synchronous)
        self._ids = ops.DeliveryIds()
        self.writer.on_open.append(self._ids.load)
        self._reader: Reader | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer.start()
        self._reader = await Reader.open(self.path)

    async def close(self) -> None:
        await self.writer.close()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    @property
    def read(self) -> Reader:
        assert self._reader is not None, "store not open"
        return self._reader

    @property
    def ids(self) -> ops.DeliveryIds:
        """For write ops that insert deliveries inside a transaction of their own (the scheduler's)."""
        return self._ids

    @property
    def healthy(self) -> bool:
        return self.writer.healthy

    def insert_events(self, items: Sequence[NewEvent]) -> asyncio.Future[list[Stored]]:
        return self.writer.submit(InsertEvents(items, self._ids, time.time()))

    def record_attempt(self, record: AttemptRecord, fallback: tuple[Event, str] | None = None,
                       ) -> asyncio.Future[list[Delivery]]:
        """With `fallback` (event, channel), the linked fallback delivery commits with the attempt that made
        the delivery dead: a crash or a failed commit leaves both or neither, never a dead end."""
        now = time.time()
        if fallback is None:
            return self.writer.submit(RecordAttempt(record, now))

        def op(conn: sqlite3.Connection) -> list[Delivery]:
            ops.record_attempts(conn, [(record, now)])
            targets = [(fallback[1], record.attempt.delivery_id)]
            return ops.add_deliveries(conn, fallback[0], targets, Origin.FALLBACK, self._ids, now)
        return self.writer.submit(op)

    async def add_deliveries(self, event: Event, targets: Sequence[tuple[str, int | None]],
                             origin: Origin) -> list[Delivery]:
        """New deliveries for one event (replay): add_deliveries_for with one item."""
        return (await self.add_deliveries_for([(event, targets)], origin))[0]

    def add_deliveries_for(self, items: Sequence[tuple[Event, Sequence[tuple[str, int | None]]]],
                           origin: Origin) -> asyncio.Future[list[list[Delivery]]]:
        """add_deliveries for several events in one write op, so in one transaction: all or none."""
        now = time.time()
        return self.writer.submit(lambda conn: [ops.add_deliveries(conn, event, targets, origin, self._ids, now)
                                                for event, targets in items])

    def purge_idempotency(self) -> asyncio.Future[int]:
        now = time.time()
        return self.writer.submit(lambda conn: ops.purge_idempotency(conn, now))
