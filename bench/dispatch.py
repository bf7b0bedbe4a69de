"""Dispatch: deliveries/s from a pre-loaded backlog to a local receiver, against a same-run baseline.

Receiver: a fast aiohttp server in a separate process answering 200 (bench/common.py receiver); it
counts the requests it answers and the wall-clock time of the first and the last.
Baseline: a bare aiohttp client (separate process, uvloop) sending N requests of the same body size
and the same headers to the same receiver through a fixed pool of 64 worker coroutines.
alertd, each round on a fresh database:
  1. pre-load: start alertd with a webhook channel (concurrency 64) to the receiver, the receiver set
     to *hold* every request open; ingest N events in batches of 500 (all 202). The 64 attempts
     that start hang, uncommitted, so nothing is recorded and no backoff is scheduled;
  2. SIGTERM alertd (drain_timeout 1s cancels the held attempts: they stay `pending` in the store,
     attempts = 0 — checked in the file), then let the receiver answer 200 again;
  3. restart alertd on the same config and file; the backlog comes from the store (the queue of
     record), in windows of [dispatch] window; poll /ready every 100 ms until open_deliveries == 0.
Why not a closed port (the obvious pre-load)? Every attempt against it fails at once, so deliveries
become `retrying` with a backoff in the future (or `dead` after max_attempts) and the backlog is not
"N due deliveries" any more. Holding the requests open costs no attempt at all.

Deliveries/s (both sides) = requests answered by the receiver / (last − first answer): startup is
excluded by construction. The wall-clock figure the brief describes — N / (open_deliveries == 0 seen
− first /health OK) — is printed beside it. After each round the file must show N deliveries
`delivered` and N attempts (no retry interfered).

    .venv/bin/python bench/dispatch.py [--quick] [--events N] [--rounds N] [--workers 64]

Target: alertd ≥ 0.7× baseline.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # runnable as a script from any directory (sys.path above)
    EVENT,
    HOST,
    PRODUCER_KEY,
    PYTHON,
    Daemon,
    DaemonConfig,
    db_counts,
    emit,
    filesystem_of,
    free_port,
    helper,
    http_json,
    log,
    median,
    py_spy,
    workdir,
)

TARGET = 0.7
BATCH = 500
COMMON = Path(__file__).resolve().with_name("common.py")


@dataclass
class Round:
    rate: float  # receiver-measured deliveries/s
    count: int
    wall_rate: float = float("nan")  # N / (drained − first /health OK), alertd only
    startup_s: float = float("nan")
    body_bytes: int = 0
    header_bytes: int = 0
    duplicates: int = 0  # receiver requests beyond one per delivery
    extra_attempts: int = 0  # attempt rows beyond one per delivery


class Receiver:
    def __init__(self, port: int) -> None:
        self.base = f"http://{HOST}:{port}"
        self.url = self.base + "/hook"

    def control(self, **query: str) -> dict[str, Any]:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return http_json("POST", f"{self.base}/_control?{params}")[1]

    def stats(self) -> dict[str, Any]:
        return http_json("GET", self.base + "/_stats")[1]

    def measured(self) -> Round:
        s = self.stats()
        span = (s["last"] - s["first"]) if s["count"] > 1 else 0.0
        return Round(s["count"] / span if span > 0 else float("nan"), s["count"],
                     body_bytes=s["body_bytes"], header_bytes=s["header_bytes"])


def baseline_round(receiver: Receiver, events: int, workers: int) -> Round:
    receiver.control(hold="0", reset="1")
    cmd = [PYTHON, str(COMMON), "sender", "--url", receiver.url, "--count", str(events), "--workers", str(workers)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"baseline sender failed: {out.stderr[-800:]}")
    sent = json.loads(out.stdout.strip().splitlines()[-1])
    if sent["failures"]:
        raise RuntimeError(f"baseline: {sent['failures']} non-2xx answers from the receiver")
    result = receiver.measured()
    result.wall_rate = events / sent["elapsed_s"]
    return result


def preload(daemon: Daemon, receiver: Receiver, events: int) -> None:
    """Ingest `events` with the receiver holding requests, then SIGTERM: a backlog of `pending` rows."""
    receiver.control(hold="1", reset="1")
    daemon.start()
    batch = json.dumps([EVENT] * BATCH, separators=(",", ":")).encode()
    headers = {"content-type": "application/json", "x-api-key": PRODUCER_KEY}
    sent = 0
    try:
        while sent < events:
            body = batch if events - sent >= BATCH else json.dumps([EVENT] * (events - sent)).encode()
            status, reply = http_json("POST", daemon.url + "/v1/events", body, headers)
            if status != 202:
                raise RuntimeError(f"pre-load: batch answered {status}: {str(reply)[:300]}")
            sent += len(reply["events"])
    finally:
        daemon.stop()
    counts = db_counts(daemon.config.db)
    pending = counts.get("deliveries_pending", 0)
    if counts["events"] != events or pending != events or counts["attempts"]:
        raise RuntimeError(f"pre-load left {counts}, expected {events} events and pending deliveries, no attempt")
    log(f"     pre-loaded {events} pending deliveries ({receiver.stats()['held']} attempts were held, "
        f"none recorded)")


def alertd_round(scratch: Path, receiver: Receiver, events: int, workers: int, round_no: int,
                 profile: Path | None = None) -> Round:
    db_dir = scratch / f"dispatch-{round_no}"
    db_dir.mkdir()
    daemon = Daemon(DaemonConfig(free_port(), db_dir / "alertd.db", "normal", receiver.url, concurrency=workers),
                    scratch, name=f"dispatch-{round_no}")
    preload(daemon, receiver, events)
    receiver.control(hold="0", reset="1")
    healthy = daemon.start()
    spy = py_spy(daemon.pid, profile / f"dispatch-{round_no}.txt") if profile is not None else None
    try:
        drained = daemon.wait_drained(600, interval=0.1)
    finally:
        daemon.stop()
        if spy is not None:
            spy.wait(30)  # py-spy writes its file when the daemon exits
    result = receiver.measured()
    result.wall_rate = events / (drained - healthy)
    result.startup_s = daemon.startup_s
    counts = db_counts(daemon.config.db)
    if counts.get("deliveries_delivered", 0) != events:
        raise RuntimeError(f"expected {events} delivered deliveries, found {counts}")
    if result.count < events:
        raise RuntimeError(f"the receiver answered {result.count} requests for {events} deliveries")
    # Useful work only: a delivery sent twice counts once (at-least-once allows it, but it is waste).
    result.duplicates = result.count - events
    result.extra_attempts = counts["attempts"] - events
    result.rate *= events / result.count
    if result.duplicates or result.extra_attempts:
        log(f"  !! {result.duplicates} requests beyond one per delivery reached the receiver; "
            f"{result.extra_attempts} attempts beyond one per delivery recorded ({_repeat_profile(daemon)})")
    return result


def _repeat_profile(daemon: Daemon) -> str:
    conn = sqlite3.connect(daemon.config.db.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT number, count(*) FROM attempts GROUP BY number").fetchall()
        twice = conn.execute("SELECT count(*) FROM (SELECT delivery_id FROM attempts GROUP BY delivery_id "
                             "HAVING count(*) > 1)").fetchone()[0]
    finally:
        conn.close()
    numbers = ", ".join(f"attempt #{n}: {c}" for n, c in rows)
    return f"{twice} deliveries attempted more than once; {numbers}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events, 1 round (CI)")
    parser.add_argument("--events", type=int, help="backlog size N (default 20,000)")
    parser.add_argument("--rounds", type=int, help="alternating (baseline, alertd) rounds (default 3)")
    parser.add_argument("--workers", type=int, default=64, help="baseline pool = channel concurrency")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (databases, logs)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record alertd's drain with py-spy (collapsed stacks, one file per round) into DIR")
    args = parser.parse_args(argv)
    args.events = args.events or (5_000 if args.quick else 20_000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    baseline: list[Round] = []
    ours: list[Round] = []
    with workdir(args.keep) as scratch:
        log(f"dispatch: backlog of {args.events} deliveries, {args.rounds} rounds alternating baseline/alertd; "
            f"storage on {filesystem_of(scratch)}")
        port = free_port()
        receiver_proc = helper("receiver", "receiver", port, scratch)
        try:
            receiver = Receiver(port)
            for round_no in range(1, args.rounds + 1):
                base = baseline_round(receiver, args.events, args.workers)
                baseline.append(base)
                log(f"  round {round_no}  baseline {base.rate:8.0f} deliveries/s  (client-timed "
                    f"{base.wall_rate:.0f}/s; body {base.body_bytes} B, headers {base.header_bytes} B)")
                mine = alertd_round(scratch, receiver, args.events, args.workers, round_no, args.profile)
                ours.append(mine)
                log(f"  round {round_no}  alertd   {mine.rate:8.0f} deliveries/s  (N / (drained − /health OK) "
                    f"{mine.wall_rate:.0f}/s; startup {mine.startup_s:.2f}s; body {mine.body_bytes} B, "
                    f"headers {mine.header_bytes} B)")
        finally:
            receiver_proc.stop()
    a, b = median([r.rate for r in ours]), median([r.rate for r in baseline])
    pairs = median([x.rate / y.rate for x, y in zip(ours, baseline, strict=True)])
    log(f"  => dispatch: alertd {a:.0f} deliveries/s vs baseline {b:.0f} deliveries/s → ratio {a / b:.2f} "
        f"(target ≥ {TARGET}; median of per-round ratios {pairs:.2f})")
    emit("dispatch", a, b, TARGET, "deliveries/s", events=args.events, workers=args.workers, rounds=args.rounds,
         wall_rate=round(median([r.wall_rate for r in ours]), 1), pair_ratio_median=round(pairs, 3),
         alertd_rounds=[round(r.rate) for r in ours], baseline_rounds=[round(r.rate) for r in baseline],
         duplicate_sends=[r.duplicates for r in ours], extra_attempts=[r.extra_attempts for r in ours])
    return 0


if __name__ == "__main__":
    sys.exit(main())
