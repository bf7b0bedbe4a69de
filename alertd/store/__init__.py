"""The only package that speaks SQL. Writes go through the one Writer; reads through a Reader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from alertd.model import Delivery, Event, Origin
from alertd.store import ops
from alertd.store.ops import AttemptRecord, NewEvent, Stored
from alertd.store.reads import DeliveryFilter, EventFilter, Reader
from alertd.store.writer import StoreUnavailable, Writer

__all__ = ["AttemptRecord", "DeliveryFilter", "EventFilter", "NewEvent", "Store", "StoreUnavailable", "Stored"]


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
        now = time.time()
        return self.writer.submit(lambda conn: ops.insert_events(conn, items, self._ids, now))

    def record_attempt(self, record: AttemptRecord) -> asyncio.Future[None]:
        now = time.time()
        return self.writer.submit(lambda conn: ops.record_attempt(conn, record, now))

    def add_deliveries(self, event: Event, targets: Sequence[tuple[str, int | None]],
                       origin: Origin) -> asyncio.Future[list[Delivery]]:
        now = time.time()
        return self.writer.submit(lambda conn: ops.add_deliveries(conn, event, targets, origin, self._ids, now))

    def purge_idempotency(self) -> asyncio.Future[int]:
        now = time.time()
        return self.writer.submit(lambda conn: ops.purge_idempotency(conn, now))
