"""Writes behind the admin API: API-managed channels, routes and keys; dead-letter retries.
Run inside the writer thread like every write."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson


def upsert_channel(conn: sqlite3.Connection, name: str, kind: str, config: Mapping[str, Any], now: float) -> None:
    conn.execute(
        "INSERT INTO channels (name, type, config, created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, NULL) "
        "ON CONFLICT(name) DO UPDATE SET type = excluded.type, config = excluded.config, "
        "updated_at = excluded.updated_at, deleted_at = NULL",
        (name, kind, orjson.dumps(dict(config)).decode(), now, now))


def delete_channel(conn: sqlite3.Connection, name: str, now: float) -> bool:
    """Soft: the row stays so history that names the channel still reads."""
    return conn.execute("UPDATE channels SET deleted_at = ? WHERE name = ? AND deleted_at IS NULL",
                        (now, name)).rowcount == 1


def upsert_route(conn: sqlite3.Connection, name: str, config: Mapping[str, Any], now: float) -> None:
    conn.execute(
        "INSERT INTO routes (name, config, created_at, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
        (name, orjson.dumps(dict(config)).decode(), now, now))


def delete_route(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM routes WHERE name = ?", (name,)).rowcount == 1


def insert_key(conn: sqlite3.Connection, name: str, prefix: str, sha256: str, role: str,
               events: Sequence[str], now: float, rate: str | None = None) -> None:
    conn.execute("INSERT INTO keys (name, prefix, sha256, role, events, created_at, rate) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (name, prefix, sha256, role, orjson.dumps(list(events)).decode(), now, rate))


def revoke_key(conn: sqlite3.Connection, name: str, now: float) -> bool:
    return conn.execute("UPDATE keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                        (now, name)).rowcount == 1


def touch_keys(conn: sqlite3.Connection, last_used: Mapping[str, float]) -> None:
    conn.executemany("UPDATE keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE name = ?",
                     [(when, name) for name, when in last_used.items()])


def reopen_dead(conn: sqlite3.Connection, delivery_ids: Sequence[int], now: float) -> list[int]:
    """Dead letters back to pending, due now, with a fresh attempt budget. `AND state = 'dead'` makes
    the claim atomic: a delivery retried twice at once is reopened once."""
    reopened = []
    for delivery_id in delivery_ids:
        cursor = conn.execute(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, updated_at = ?, budget_from = attempts "
            "WHERE id = ? AND state = 'dead'", (now, now, delivery_id))
        if cursor.rowcount == 1:
            reopened.append(delivery_id)
    return reopened
