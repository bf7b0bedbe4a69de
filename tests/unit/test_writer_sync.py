"""Where a `synchronous = full` COMMIT runs: on the loop while the disk syncs fast, in a thread when it does
not, with a probe on the loop now and then to notice the disk is fast again."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alertd.store import writer as writer_module
from alertd.store.writer import PROBE_EVERY_COMMITS, Writer


async def commit_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_seconds: Callable[[int], float],
                       commits: int, synchronous: str = "full") -> list[str]:
    """Which way each of `commits` commits went ("loop" or "thread"), the n-th loop commit timed as
    `sync_seconds(n)`; every row committed either way."""
    where: list[str] = []
    real_to_thread = asyncio.to_thread

    def timed(conn: sqlite3.Connection) -> float:
        conn.execute("COMMIT")
        where.append("loop")
        return sync_seconds(len(where))

    async def to_thread(function: Callable[..., Any], *args: Any) -> Any:
        if args == ("COMMIT",):  # not the checkpoints, which always run there
            where.append("thread")
        return await real_to_thread(function, *args)

    monkeypatch.setattr(writer_module, "_timed_commit", timed)
    monkeypatch.setattr(writer_module.asyncio, "to_thread", to_thread)
    writer = Writer(tmp_path / "w.db", synchronous)
    writer.start()
    await writer.submit(lambda c: c.execute("CREATE TABLE t (x)"))
    where.clear()
    for n in range(commits):
        await writer.submit(lambda c, n=n: c.execute("INSERT INTO t VALUES (?)", (n,)))
    await writer.close()
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == commits
    conn.close()
    return where


async def test_a_fast_disk_commits_on_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(await commit_where(tmp_path, monkeypatch, lambda n: 0.0003, 20)) == {"loop"}


async def test_a_slow_disk_commits_in_a_thread_and_is_probed_now_and_then(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    where = await commit_where(tmp_path, monkeypatch, lambda n: 0.05, 2 * (PROBE_EVERY_COMMITS + 1))
    # the first commit (the table's) found out: an average of 10 ms is past 2 ms. Then threads, with a probe
    # on the loop after every PROBE_EVERY_COMMITS of them
    assert where[:PROBE_EVERY_COMMITS] == ["thread"] * PROBE_EVERY_COMMITS
    assert where[PROBE_EVERY_COMMITS] == "loop"
    assert where.count("loop") == 2


async def test_a_disk_that_turns_fast_again_is_back_on_the_loop(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    where = await commit_where(tmp_path, monkeypatch, lambda n: 0.05 if n == 1 else 0.0001,
                               12 * (PROBE_EVERY_COMMITS + 1))
    assert where[-20:] == ["loop"] * 20


async def test_normal_never_leaves_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "thread" not in await commit_where(tmp_path, monkeypatch, lambda n: 1.0, 5, "normal")
