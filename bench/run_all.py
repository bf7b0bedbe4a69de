"""Runs every bench (ingest, dispatch; routing and scheduler when their files exist), prints one JSON line
per result — {"bench", "alertd", "baseline", "ratio", "target", "ok", "unit"} — then a human summary,
and writes every result with its details to bench/results/latest.json.

    .venv/bin/python bench/run_all.py [--quick] [--only ingest,dispatch,routing]

Missed targets are reported, not failures: the exit status is 0 unless a bench crashed (or ingest
found an acknowledged event missing from the store, which is a correctness failure, not a speed one).
The benches' own progress goes to stderr; stdout carries only the JSON lines and the summary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "latest.json"
BENCHES = ("routing", "ingest", "dispatch", "scheduler")  # each bench/<name>.py, run if present
KEYS = ("bench", "alertd", "baseline", "ratio", "target", "ok", "unit")


def normalise(line: dict[str, Any]) -> dict[str, Any]:
    """routing.py reports µs per event against an absolute target; map it onto the common shape."""
    if "alertd" in line or "us_per_event" not in line:
        return line
    us, base = line["us_per_event"], line.get("baseline_us_per_event")
    return {"bench": line["bench"], "alertd": us, "baseline": base,
            "ratio": round(us / base, 3) if base else None, "target": line.get("target_us"),
            "ok": bool(line.get("ok")), "unit": "µs/event (lower is better; target is absolute)",
            **{k: v for k, v in line.items() if k not in ("bench", "us_per_event", "baseline_us_per_event",
                                                          "target_us", "ok")}}


def run_bench(name: str, quick: bool) -> tuple[int, list[dict[str, Any]], float]:
    cmd = [sys.executable, str(BENCH_DIR / f"{name}.py"), *(["--quick"] if quick else [])]
    print(f"== {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=BENCH_DIR.parent) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write("   " + line)
            sys.stderr.flush()
            if line.startswith("{"):
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if isinstance(data, dict) and "bench" in data:
                    results.append(normalise(data))
        code = proc.wait()
    return code, results, time.monotonic() - started


def summary_line(r: dict[str, Any]) -> str:
    def num(v: Any) -> str:
        if not isinstance(v, int | float):
            return str(v)
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"

    verdict = "ok  " if r.get("ok") else "MISS"
    ratio = f"{r['ratio']:.2f}×" if isinstance(r.get("ratio"), int | float) else "-"
    return (f"  {verdict} {r['bench']:<30} alertd {num(r.get('alertd')):>10}  baseline {num(r.get('baseline')):>10}"
            f"  ratio {ratio:>6}  target {r.get('target')}  ({r.get('unit', '')})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short versions of every bench (about a minute)")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHES))
    args = parser.parse_args(argv)
    wanted = [b.strip() for b in args.only.split(",")] if args.only else list(BENCHES)
    unknown = set(wanted) - set(BENCHES)
    if unknown:
        parser.error(f"unknown bench {sorted(unknown)}; known: {', '.join(BENCHES)}")

    started = time.time()
    results: list[dict[str, Any]] = []
    crashed: list[str] = []
    timings: dict[str, float] = {}
    for name in wanted:
        if not (BENCH_DIR / f"{name}.py").exists():
            print(f"== {name}: bench/{name}.py not found, skipped", file=sys.stderr)
            continue
        code, found, took = run_bench(name, args.quick)
        timings[name] = round(took, 1)
        results.extend(found)
        if code != 0 or not found:
            crashed.append(f"{name} (exit {code}, {len(found)} results)")
            results.append({"bench": name, "alertd": None, "baseline": None, "ratio": None, "target": None,
                            "ok": False, "unit": "", "crashed": True, "exit": code})

    for r in results:
        print(json.dumps({k: r.get(k) for k in KEYS}))
    print()
    print(f"bench summary ({'quick' if args.quick else 'full'}, {time.time() - started:.0f}s):")
    for r in results:
        print(summary_line(r))
    missed = [r["bench"] for r in results if not r.get("ok") and not r.get("crashed")]
    if missed:
        print(f"  targets missed (reported, not failures): {', '.join(missed)}")
    if crashed:
        print(f"  CRASHED: {', '.join(crashed)}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"quick": args.quick, "started": started, "seconds": timings,
                                   "results": results}, indent=2) + "\n")
    print(f"  details: {RESULTS.relative_to(BENCH_DIR.parent)}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
