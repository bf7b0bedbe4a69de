"""Storm control in the store: silences (rows, the config ones synced from the TOML) and the dedup
windows' upkeep. Write ops run in the writer thread like store.ops; reads use the read connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import orjson

from alertd.silences import Managed, Silence, SilenceBook, SilenceDecl, SilenceMatchers
from alertd.store.reads import Reader

if TYPE_CHECKING:
    from alertd.store import Store

ListState = Literal["current", "active", "pending", "expired", "all"]
_COLUMNS = "id, managed, matchers, starts_at, ends_at, creator, comment, created_at, expired_at"


def silence_from_row(row: Sequence[Any]) -> Silence:
    managed: Managed = "config" if row[1] == "config" else "api"
    return Silence(id=row[0], managed=managed, matchers=SilenceMatchers.from_config(orjson.loads(row[2])),
                   starts_at=row[3], ends_at=row[4], creator=row[5], comment=row[6], created_at=row[7],
                   expired_at=row[8])


# ---- writes (writer thread) ---------------------------------------------------------------------

def insert_silence(conn: sqlite3.Connection, decl: SilenceDecl, managed: Managed, now: float) -> int:
    starts_at, ends_at = decl.window(now)
    cursor = conn.execute(
        "INSERT INTO silences (managed, matchers, starts_at, ends_at, creator, comment, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (managed, decl.matchers().to_json(), starts_at, ends_at, decl.creator, decl.comment, now))
    return int(cursor.lastrowid or 0)


def expire_silence(conn: sqlite3.Connection, silence_id: int, now: float) -> bool:
    """Only an API silence not yet expired: the WHERE makes two concurrent expiries count once."""
    return conn.execute("UPDATE silences SET expired_at = ? WHERE id = ? AND managed = 'api' "
                        "AND expired_at IS NULL", (now, silence_id)).rowcount == 1


def sync_config_silences(conn: sqlite3.Connection, declared: Sequence[SilenceDecl], now: float) -> list[int]:
    """Makes the config-managed rows match the TOML. A declaration already stored (same matchers,
    creator, comment, and the times it states) keeps its row, id and window — so a restart or SIGHUP
    does not push back a silence declared with only `duration`. New ones are inserted; stored ones
    no longer declared are expired (kept as history). Returns the ids in declaration order."""
    rows = conn.execute("SELECT id, matchers, starts_at, ends_at, creator, comment FROM silences "
                        "WHERE managed = 'config' AND expired_at IS NULL ORDER BY id").fetchall()
    unclaimed = list(rows)
    ids: list[int] = []
    for decl in declared:
        text = decl.matchers().to_json()
        found = next((r for r in unclaimed if (r[1], r[4], r[5]) == (text, decl.creator, decl.comment)
                      and decl.describes(r[2], r[3])), None)
        if found is not None:
            unclaimed.remove(found)
            ids.append(found[0])
        else:
            ids.append(insert_silence(conn, decl, "config", now))
    conn.executemany("UPDATE silences SET expired_at = ? WHERE id = ?", [(now, r[0]) for r in unclaimed])
    return ids


def purge_dedup(conn: sqlite3.Connection, now: float) -> int:
    """Dedup windows that have closed: their rows decide nothing any more."""
    return conn.execute("DELETE FROM dedup WHERE until <= ?", (now,)).rowcount


# ---- reads --------------------------------------------------------------------------------------

async def list_silences(reader: Reader, state: ListState, now: float, limit: int = 500) -> list[Silence]:
    """`current` is active and pending (the default view); newest first."""
    where = {
        "current": ("expired_at IS NULL AND ends_at > ?", (now,)),
        "active": ("expired_at IS NULL AND ends_at > ? AND starts_at <= ?", (now, now)),
        "pending": ("expired_at IS NULL AND starts_at > ?", (now,)),
        "expired": ("(expired_at IS NOT NULL OR ends_at <= ?)", (now,)),
        "all": ("1 = 1", ()),
    }
    clause, params = where[state]
    rows = await reader._all(f"SELECT {_COLUMNS} FROM silences WHERE {clause} ORDER BY id DESC LIMIT ?",
                             (*params, limit))
    return [silence_from_row(r) for r in rows]


async def get_silence(reader: Reader, silence_id: int) -> Silence | None:
    rows = await reader._all(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,))
    return silence_from_row(rows[0]) if rows else None


async def refresh(book: SilenceBook, reader: Reader) -> None:
    """Loads the silences in force (not expired, not ended) into the book, in one swap. Call it after
    every change to the table; a silence that ends later simply stops being active. Serialised, so a
    slow read that started before a change cannot swap in its older view after a newer one."""
    async with book.lock:
        book.swap(await list_silences(reader, "current", time.time(), limit=-1))


async def apply_config(book: SilenceBook, store: Store, declared: Sequence[SilenceDecl]) -> list[int]:
    """At start and on every reload: the TOML's [[silences]] into the store, then the book."""
    now = time.time()
    ids = await store.writer.submit(lambda conn: sync_config_silences(conn, declared, now))
    await refresh(book, store.read)
    return ids
