"""Load: per-key rate limits, back-pressure with a receiver that is down (the store is the queue, memory
stays flat), and a soak (slow only; SOAK_SECONDS shortens it)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import PRODUCER_KEY, Reply, free_port, route, webhook
from tests.reliability.helpers import (
    assert_error_shape,
    fd_count,
    gather_limited,
    missing_events,
    percentile,
    record,
    rss_kib,
    wait_quiet,
)

pytestmark = pytest.mark.e2e
RATED_KEY = "alertd_rel_rated_Wm3Kq8Tz1Xv6Bn4P"


async def test_a_key_over_its_rate_gets_429_and_nothing_of_it_is_stored(start_daemon):
    daemon = await start_daemon(keys=[{"name": "producer", "key": PRODUCER_KEY},
                                      {"name": "rated", "key": RATED_KEY, "rate": "100/s"}])

    async def one(n: int) -> tuple[int, str | None, dict[str, str], bytes]:
        body: Any = ({"event": "rate.single", "payload": {"n": n}} if n % 5 else
                     [{"event": "rate.batch", "payload": {"n": n, "i": i}} for i in range(3)])
        response = await daemon.post_events(body, key=RATED_KEY)
        accepted = None
        if response.status == 202:
            data = response.json()
            accepted = ",".join(e["id"] for e in data["events"]) if isinstance(body, list) else data["id"]
        return response.status, accepted, response.headers, response.body

    t0 = time.monotonic()
    results = await gather_limited(32, [one(n) for n in range(400)])
    elapsed = time.monotonic() - t0
    statuses = Counter(r[0] for r in results)
    assert set(statuses) <= {202, 429} and statuses[429] > 0, statuses
    # 100 at once, then 100/s: what got through is bounded by the burst plus the refill over the run
    assert statuses[202] <= 100 + 100 * elapsed + 5, (statuses, elapsed)
    for status, _, headers, body in results:
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert_error_shape(body, 429, "rate_limited")
    accepted_ids = [i for r in results if r[1] for i in r[1].split(",")]
    stored = await daemon.all_events()
    daemon.bodies.clear()
    assert {e["id"] for e in stored} == set(accepted_ids), "a refused (429) request stored something"
    other = await daemon.post_events({"event": "rate.other"})  # another key is not affected
    assert other.status == 202
    record("per-key rate limit (100/s)", requests=len(results), accepted_202=statuses[202],
           refused_429=statuses[429], seconds=round(elapsed, 2), events_stored=len(stored))


async def test_back_pressure_5000_events_with_the_receiver_down(start_daemon, make_receiver):
    port = free_port()
    receiver = await make_receiver(port=port, start=False)  # down: connection refused
    daemon = await start_daemon(
        channels=[webhook("hook", f"http://127.0.0.1:{port}/hook", concurrency=8)],
        routes=[route("all", "*", ["hook"])],
        dispatch={"window": 100, "max_attempts": 100, "backoff_base": "1s", "backoff_cap": "2s"})
    assert daemon.proc is not None
    pid = daemon.proc.pid

    async def post_batch(start: int) -> list[str]:
        response = await daemon.post_events([{"event": "bp.tick", "payload": {"n": start + i, "pad": "p" * 200}}
                                             for i in range(100)])
        assert response.status == 202, response.body[:200]
        daemon.bodies.clear()
        return [e["id"] for e in response.json()["events"]]

    ids = await post_batch(0)  # warm-up: the window fills, the first attempts fail
    await asyncio.sleep(1.0)
    rss_before = rss_kib(pid)
    fds_before = fd_count(pid)
    t0 = time.monotonic()
    for chunk in await gather_limited(4, [post_batch(n) for n in range(100, 5000, 100)]):
        ids += chunk
    ingest_s = time.monotonic() - t0
    await asyncio.sleep(1.0)
    rss_after = rss_kib(pid)
    body = (await daemon.request("GET", "/ready")).json()
    assert len(ids) == len(set(ids)) == 5000
    assert body["open_deliveries"] == 5000, body  # all committed, none delivered: the store is the queue
    assert sum(body["queue_depth"].values()) + body["in_flight"] <= 100, body  # memory holds the window only
    growth_mib = (rss_after - rss_before) / 1024
    assert growth_mib < 50, f"RSS grew {growth_mib:.1f} MiB while 5000 deliveries waited"

    await receiver.start()
    assert receiver.port == port
    t1 = time.monotonic()
    await wait_quiet(daemon, timeout=120)
    drain_s = time.monotonic() - t1
    delivered = Counter(d["state"] for d in await daemon.all_deliveries())
    daemon.bodies.clear()
    assert delivered == {"delivered": 5000}, delivered
    assert set(ids) <= set(receiver.event_ids("/hook"))
    assert not await missing_events(daemon, ids[:: 50])
    record("back-pressure (window 100, receiver down)", events=5000, ingest_seconds=round(ingest_s, 2),
           rss_before_mib=round(rss_before / 1024, 1), rss_after_5000_mib=round(rss_after / 1024, 1),
           rss_growth_mib=round(growth_mib, 1), rss_after_delivery_mib=round(rss_kib(pid) / 1024, 1),
           fds_before=fds_before, fds_after=fd_count(pid), deliver_all_after_up_seconds=round(drain_s, 1))


# ------------------------------------------------------------------------------------------ soak


@pytest.mark.slow
@pytest.mark.timeout(0)
async def test_soak_steady_rate_with_a_flapping_receiver(start_daemon, receiver):
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    rate = float(os.environ.get("SOAK_RATE", "200"))
    flap_s = 10.0
    window_s = min(60.0, seconds / 4)

    def flapping(request: Any) -> Reply:  # healthy for 10 s, failing (500) for 10 s, … (from `started`, below)
        return Reply(status=200 if int((time.monotonic() - started) // flap_s) % 2 == 0 else 500)

    receiver.script("/hook", flapping)
    daemon = await start_daemon(channels=[webhook("hook", receiver.url(), concurrency=8)],
                                routes=[route("all", "*", ["hook"])],
                                dispatch={"max_attempts": 20, "backoff_base": "500ms", "backoff_cap": "5s"})
    assert daemon.proc is not None
    pid = daemon.proc.pid
    started = time.monotonic()
    samples: list[tuple[float, float]] = []  # (seconds since start, ingest latency)
    accepted: list[str] = []
    failures: Counter[str] = Counter()
    session = daemon.http
    workers = 4
    interval = workers / rate

    async def produce(worker: int) -> None:
        next_at = time.monotonic() + worker * interval / workers
        n = 0
        while time.monotonic() - started < seconds:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            n += 1
            t0 = time.monotonic()
            try:
                async with session.post(daemon.url + "/v1/events", headers={"x-api-key": PRODUCER_KEY},
                                        json={"event": "soak.tick", "payload": {"w": worker, "n": n}},
                                        timeout=aiohttp.ClientTimeout(total=10)) as response:
                    data = await response.json()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures[type(exc).__name__] += 1
                continue
            if status == 202:
                samples.append((t0 - started, time.monotonic() - t0))
                accepted.append(data["id"])
            else:
                failures[str(status)] += 1

    warmup = min(10.0, seconds / 10)  # the first probe and the first latency window start after it
    probes: list[tuple[float, int, int]] = []

    async def probe() -> None:
        await asyncio.sleep(warmup)
        while time.monotonic() - started < seconds:
            probes.append((round(time.monotonic() - started), rss_kib(pid), fd_count(pid)))
            await asyncio.sleep(min(30.0, seconds / 10))

    await asyncio.gather(*(produce(w) for w in range(workers)), probe())
    start_probe = probes[0][1:]
    end_probe = (rss_kib(pid), fd_count(pid))
    first = [lat for at, lat in samples if warmup <= at < warmup + window_s]
    last = [lat for at, lat in samples if at >= seconds - window_s]
    p99_first, p99_last = percentile(first, 99), percentile(last, 99)
    receiver.script("/hook", 200)
    await wait_quiet(daemon, timeout=300)
    states = Counter(d["state"] for d in await daemon.all_deliveries())
    daemon.bodies.clear()
    missing = await missing_events(daemon, accepted[::100])
    figures = {
        "seconds": seconds, "target_rate": rate, "accepted_202": len(accepted),
        "achieved_rate": round(len(accepted) / seconds, 1), "failures": dict(failures),
        "rss_start_mib": round(start_probe[0] / 1024, 1), "rss_end_mib": round(end_probe[0] / 1024, 1),
        "fds_start": start_probe[1], "fds_end": end_probe[1],
        "ingest_p99_ms_first_window": round(p99_first * 1000, 1),
        "ingest_p99_ms_last_window": round(p99_last * 1000, 1),
        "window_s": window_s, "deliveries": dict(states), "rss_fd_probes": probes[-4:],
    }
    record("soak", **figures)
    assert not missing and not failures, figures
    assert set(states) <= {"delivered", "dead"}, figures
    assert (end_probe[0] - start_probe[0]) / 1024 < 50, figures
    assert end_probe[1] - start_probe[1] <= 20, figures
    assert p99_last <= max(3 * p99_first, p99_first + 0.05), figures
