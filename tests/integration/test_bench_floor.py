"""The ingest bench's durable floor must keep its own promise: a 202 means the row is committed.
Otherwise the floor would measure a server that cheats, and alertd's ratio to it would mean nothing."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_floor_answers_202_only_for_committed_rows(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "floor.db"
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "common.py"), "floor-ingest", "--port", str(port),
                             "--db", str(db), "--sync", "full"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"event": "pr.run.failed", "payload": {"n": 1}}).encode()
        deadline, answered = time.monotonic() + 20, []
        while len(answered) < 5:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=body, method="POST")
                with urllib.request.urlopen(request, timeout=5) as response:
                    answered.append(response.status)
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "floor server did not start"
                time.sleep(0.1)
        assert answered == [202] * 5
        with contextlib.closing(sqlite3.connect(db)) as conn:  # a second connection sees only what was committed
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 5
    finally:
        proc.terminate()
        proc.wait(10)
