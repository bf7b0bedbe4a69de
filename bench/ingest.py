"""Durable ingest: single-event POST /v1/events → req/s, p50, p99, against a same-run baseline.

The baseline is a plain aiohttp server (separate process, same Python, uvloop like alertd) whose
handler reads and orjson-parses the same ~300-byte body and answers 202 without storing. One load
generator (wrk if on PATH, else a Python one) drives both, alternating baseline, alertd, baseline,
alertd … and each figure is the median of its rounds. Four alertd set-ups, each a fresh database on
the real disk: synchronous = normal | full, × ingest only (no route: 0 deliveries) | ingest + delivery
(route `*` → a webhook channel to a local receiver answering 200). After every alertd round the events
in the SQLite file (opened read-only) must number at least the 2xx answers: a 202 is a promise.

    .venv/bin/python bench/ingest.py [--quick] [--rounds N] [--duration S] [--sync normal,full]
                                     [--mode ingest_only,with_delivery] [--generator auto|wrk|python]

Target: alertd ≥ 0.8× baseline req/s. Exit status 3 if an acknowledged event is missing from the store.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # runnable as a script from any directory (sys.path above)
    HOST,
    Daemon,
    DaemonConfig,
    LoadGenerator,
    LoadResult,
    Proc,
    db_counts,
    emit,
    filesystem_of,
    free_port,
    helper,
    http_json,
    log,
    median,
    workdir,
)

TARGET = 0.8
MODES = {"ingest_only": "ingest only (0 deliveries)", "with_delivery": "ingest + delivery"}
DRAIN_TIMEOUT_S = 300.0


@dataclass
class Setup:
    sync: str
    mode: str
    baseline: list[LoadResult] = field(default_factory=list)
    alertd: list[LoadResult] = field(default_factory=list)
    floor: list[LoadResult] = field(default_factory=list)  # with --floor: the durable floor's rounds
    acked: int = 0
    stored: int = 0
    durable: bool = True
    drain_s: list[float] = field(default_factory=list)
    delivered: int = 0
    startup_s: float = 0.0

    @property
    def name(self) -> str:
        return f"ingest.{self.sync}.{self.mode}"

    def check_durable(self, db: Path, round_no: int) -> None:
        counts = db_counts(db)
        self.stored = counts["events"]
        if self.stored < self.acked:
            self.durable = False
            log(f"  !! DURABILITY VIOLATION after round {round_no}: {self.acked} events acknowledged "
                f"(2xx) but only {self.stored} in the store")
        else:
            log(f"     durable: {self.stored} events in the store ≥ {self.acked} acknowledged")
        if self.mode == "with_delivery" and counts["deliveries"] < self.stored:
            self.durable = False
            log(f"  !! {counts['deliveries']} delivery rows for {self.stored} routed events")


def run_setup(setup: Setup, generator: LoadGenerator, baseline_url: str, receiver_port: int,
              scratch: Path, rounds: int, duration: float, warmup: float, with_floor: bool = False) -> None:
    db_dir = scratch / setup.name
    db_dir.mkdir()
    floor_url, floor = None, None
    if with_floor:
        floor_port = free_port()
        floor = helper(f"floor-{setup.name}", "floor-ingest", floor_port, scratch, "--db",
                       str(db_dir / "floor.db"), "--sync", setup.sync)
        floor_url = f"http://{HOST}:{floor_port}/v1/events"
        generator.run(floor_url, warmup)
    try:
        _run_rounds(setup, generator, baseline_url, floor_url, receiver_port, db_dir, scratch, rounds, duration,
                    warmup)
    finally:
        if floor is not None:
            floor.stop()


def _run_rounds(setup: Setup, generator: LoadGenerator, baseline_url: str, floor_url: str | None,
                receiver_port: int, db_dir: Path, scratch: Path, rounds: int, duration: float,
                warmup: float) -> None:
    hook = f"http://{HOST}:{receiver_port}/hook" if setup.mode == "with_delivery" else None
    daemon = Daemon(DaemonConfig(free_port(), db_dir / "alertd.db", setup.sync, hook, concurrency=32),
                    scratch, name=setup.name)
    daemon.start()
    setup.startup_s = daemon.startup_s
    try:
        url = daemon.url + "/v1/events"
        setup.acked += generator.run(url, warmup).ok  # warm-up (the baseline was warmed once, in main)
        setup.check_durable(daemon.config.db, 0)
        _drain(setup, daemon, record=False)
        for round_no in range(1, rounds + 1):
            base = generator.run(baseline_url, duration)
            setup.baseline.append(base)
            log(f"  round {round_no}  baseline {base.summary()}")
            if floor_url is not None:
                setup.floor.append(generator.run(floor_url, duration))
                log(f"  round {round_no}  floor    {setup.floor[-1].summary()}")
            ours = generator.run(url, duration)
            assert daemon.proc is not None
            daemon.proc.check()
            setup.alertd.append(ours)
            setup.acked += ours.ok
            log(f"  round {round_no}  alertd   {ours.summary()}")
            setup.check_durable(daemon.config.db, round_no)
            _drain(setup, daemon, record=True)
    finally:
        daemon.stop()
    setup.check_durable(daemon.config.db, rounds)  # and once more with the daemon stopped


def _drain(setup: Setup, daemon: Daemon, record: bool) -> None:
    """Deliveries left over from a round must not eat the CPU of the next baseline round."""
    if setup.mode != "with_delivery":
        return
    started = time.monotonic()
    daemon.wait_drained(DRAIN_TIMEOUT_S)
    if record:
        took = time.monotonic() - started
        setup.drain_s.append(took)
        log(f"     backlog delivered {took:.1f}s after the round ended")


def report(setup: Setup, generator: LoadGenerator, receiver_count: int | None) -> dict[str, Any]:
    a_rps = median([r.rps for r in setup.alertd])
    b_rps = median([r.rps for r in setup.baseline])
    details: dict[str, Any] = {
        "sync": setup.sync, "mode": MODES[setup.mode], "generator": generator.kind,
        "connections": generator.connections, "rounds": len(setup.alertd),
        "p50_ms": round(median([r.p50_ms for r in setup.alertd]), 2),
        "p99_ms": round(median([r.p99_ms for r in setup.alertd]), 2),
        "baseline_p50_ms": round(median([r.p50_ms for r in setup.baseline]), 2),
        "baseline_p99_ms": round(median([r.p99_ms for r in setup.baseline]), 2),
        "errors": sum(r.non_2xx + r.socket_errors for r in setup.alertd),
        "acknowledged": setup.acked, "stored": setup.stored, "durable": setup.durable,
        # each round's alertd ÷ the baseline just before it: a second view of the noise
        "pair_ratio_median": round(median([a.rps / b.rps for a, b in zip(setup.alertd, setup.baseline,
                                                                          strict=True) if b.rps]), 3),
        "alertd_rounds": [round(r.rps) for r in setup.alertd],
        "baseline_rounds": [round(r.rps) for r in setup.baseline],
        "valid": setup.durable,
    }
    if setup.floor:
        f_rps = median([r.rps for r in setup.floor])
        details["floor"] = round(f_rps, 1)
        details["floor_ratio"] = round(f_rps / b_rps, 3) if b_rps else None
        details["alertd_to_floor"] = round(a_rps / f_rps, 3) if f_rps else None
        log(f"     durable floor {f_rps:.0f} req/s: {details['floor_ratio']} of the baseline; alertd is "
            f"{details['alertd_to_floor']} of the floor")
    if setup.mode == "with_delivery":
        details["drain_after_round_s"] = [round(s, 2) for s in setup.drain_s]
        details["receiver_count"] = receiver_count
        details["duplicate_sends"] = receiver_count - setup.stored if receiver_count is not None else None
        if receiver_count is not None and receiver_count != setup.stored:
            log(f"  !! the receiver answered {receiver_count} requests for {setup.stored} routed events")
    r = a_rps / b_rps if b_rps else float("nan")
    log(f"  => {setup.name}: alertd {a_rps:.0f} req/s (p50 {details['p50_ms']} ms, p99 {details['p99_ms']} ms) "
        f"vs baseline {b_rps:.0f} req/s (p50 {details['baseline_p50_ms']} ms, p99 {details['baseline_p99_ms']} ms)"
        f" → ratio {r:.2f} (target ≥ {TARGET}; median of per-round ratios {details['pair_ratio_median']:.2f})")
    return emit(setup.name, a_rps, b_rps, TARGET, "req/s", **details)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per set-up (CI)")
    parser.add_argument("--rounds", type=int, help="alternating (baseline, alertd) rounds (default 3)")
    parser.add_argument("--duration", type=float, help="seconds per round (default 8)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per server (default 2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sync", default="normal,full", help="comma-separated: normal,full")
    parser.add_argument("--mode", default="ingest_only,with_delivery", help="ingest_only,with_delivery")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (databases, logs)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure the durable floor (the baseline plus a bare group commit) in each round")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 8.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.syncs = [s.strip() for s in args.sync.split(",") if s.strip()]
    args.modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    if not set(args.syncs) <= {"normal", "full"} or not set(args.modes) <= set(MODES):
        parser.error("--sync takes normal,full and --mode takes ingest_only,with_delivery")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    durable = True
    with workdir(args.keep) as scratch:
        generator = LoadGenerator.pick(args.generator, scratch, args.connections)
        log(f"load generator: {generator.describe()}")
        log(f"storage: {scratch} on {filesystem_of(scratch)}; {args.rounds} rounds × {args.duration:g}s, "
            f"alternating baseline/alertd, median reported")
        procs: list[Proc] = []
        try:
            baseline_port, receiver_port = free_port(), free_port()
            procs.append(helper("baseline-ingest", "baseline-ingest", baseline_port, scratch))
            procs.append(helper("receiver", "receiver", receiver_port, scratch))
            baseline_url = f"http://{HOST}:{baseline_port}/v1/events"
            generator.run(baseline_url, args.warmup)
            for sync in args.syncs:
                for mode in args.modes:
                    setup = Setup(sync, mode)
                    log(f"\n{setup.name}: synchronous = {sync!r}, {MODES[mode]}")
                    before = http_json("GET", f"http://{HOST}:{receiver_port}/_stats")[1]["count"]
                    run_setup(setup, generator, baseline_url, receiver_port, scratch, args.rounds, args.duration,
                              args.warmup, args.floor)
                    after = http_json("GET", f"http://{HOST}:{receiver_port}/_stats")[1]["count"]
                    report(setup, generator, after - before if mode == "with_delivery" else None)
                    durable = durable and setup.durable
        finally:
            for proc in procs:
                proc.stop()
    if not durable:
        log("FAILED: acknowledged events are missing from the store (see above)")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
