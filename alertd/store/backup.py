"""A consistent copy of a live database through SQLite's online backup API."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class BackupError(Exception):
    pass


def backup(source: Path, target: Path) -> tuple[int, int]:
    """Copies in one step: one read transaction, so the copy is a single consistent point in time even
    while the daemon writes (WAL readers never block the writer). Returns (pages, events) of the copy."""
    if not source.exists():
        raise BackupError(f"{source}: no such database")
    partial = target.with_name(target.name + ".partial")
    try:
        src = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True)
        dst = sqlite3.connect(partial)
        try:
            src.execute("PRAGMA busy_timeout=10000")
            src.backup(dst, pages=-1)
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            pages = dst.execute("PRAGMA page_count").fetchone()[0]
            events = dst.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup of {source} failed: {exc}") from None
    if check != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {check}")
    partial.replace(target)  # only a complete, checked copy ever carries the target's name
    return int(pages), int(events)
