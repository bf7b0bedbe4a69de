"""Numbered schema migrations, tracked in PRAGMA user_version. Append only: never edit a shipped one."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: the core pipeline
    """
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        severity INTEGER NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        idempotency_key TEXT,
        deliveries INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events(id),
        channel TEXT NOT NULL,
        severity INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        origin TEXT NOT NULL DEFAULT 'route',
        replay_of INTEGER REFERENCES deliveries(id),
        reason TEXT,
        last_error TEXT
    );
    CREATE INDEX deliveries_event ON deliveries(event_id);
    CREATE INDEX deliveries_state ON deliveries(state, id);
    -- only open work is indexed for the dispatcher, so the index stays the size of the backlog
    CREATE INDEX deliveries_due ON deliveries(severity DESC, next_attempt_at, id)
        WHERE state IN ('pending', 'retrying');
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
        number INTEGER NOT NULL,
        started_at REAL NOT NULL,
        duration_ms REAL NOT NULL,
        outcome TEXT NOT NULL,
        http_status INTEGER,
        error TEXT
    );
    CREATE INDEX attempts_delivery ON attempts(delivery_id);
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE channels (
        name TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        deleted_at REAL
    );
    CREATE TABLE routes (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE keys (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        events TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    );
    """,
    # 2: a dead letter retried in place gets a fresh attempt budget, counted from here
    """
    ALTER TABLE deliveries ADD COLUMN budget_from INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: the scheduler — checks and their pings, one-shot expectations, storm control (silences, dedup
    # windows), incidents with escalation, approval requests, single-use link tokens, the audit trail
    """
    ALTER TABLE deliveries ADD COLUMN reason_ref INTEGER;
    CREATE TABLE checks (
        name TEXT PRIMARY KEY,
        managed TEXT NOT NULL,
        config TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'new',
        last_ping_at REAL,
        last_start_at REAL,
        deadline_at REAL,
        runtime_deadline_at REAL,
        fail_streak INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE pings (
        id INTEGER PRIMARY KEY,
        check_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        exit_status INTEGER,
        received_at REAL NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        body TEXT
    );
    CREATE INDEX pings_check ON pings(check_name, id);
    CREATE TABLE expectations (
        key TEXT PRIMARY KEY,
        grp TEXT,
        deadline_at REAL NOT NULL,
        severity INTEGER NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        resolved_at REAL
    );
    CREATE INDEX expectations_waiting ON expectations(deadline_at) WHERE state = 'waiting';
    CREATE TABLE outcome_groups (
        grp TEXT PRIMARY KEY,
        fail_streak INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY,
        managed TEXT NOT NULL,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        creator TEXT NOT NULL,
        comment TEXT NOT NULL,
        created_at REAL NOT NULL,
        expired_at REAL
    );
    CREATE TABLE dedup (
        route TEXT NOT NULL,
        key TEXT NOT NULL,
        delivery_id INTEGER NOT NULL,
        until REAL NOT NULL,
        PRIMARY KEY (route, key)
    ) WITHOUT ROWID;
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        route TEXT NOT NULL,
        state TEXT NOT NULL,
        opened_at REAL NOT NULL,
        step INTEGER NOT NULL DEFAULT 0,
        next_step_at REAL,
        acked_at REAL,
        acked_by TEXT
    );
    CREATE INDEX incidents_due ON incidents(next_step_at) WHERE state = 'open';
    CREATE TABLE action_requests (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER,
        event_id TEXT NOT NULL,
        action TEXT NOT NULL,
        label TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        decided_at REAL,
        decided_by TEXT
    );
    CREATE TABLE used_tokens (
        jti TEXT PRIMARY KEY,
        used_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        what TEXT NOT NULL,
        subject TEXT NOT NULL,
        actor TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: per-key request rates
    """
    ALTER TABLE keys ADD COLUMN rate TEXT;
    """,
    # 5: the dispatcher refills each channel up to its share of the window: open work by channel, which
    # replaces the index the one global read used
    """
    CREATE INDEX deliveries_channel_due ON deliveries(channel, severity DESC, next_attempt_at, id)
        WHERE state IN ('pending', 'retrying');
    DROP INDEX deliveries_due;
    """,
)

LATEST = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> tuple[int, int]:
    """Apply every migration past the file's version, each in its own transaction.
    Returns (from, to). Refuses a file written by a newer alertd."""
    start = schema_version(conn)
    if start > LATEST:
        raise RuntimeError(f"database schema version {start} is newer than this alertd ({LATEST}); upgrade alertd")
    for number in range(start + 1, LATEST + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return start, LATEST


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
