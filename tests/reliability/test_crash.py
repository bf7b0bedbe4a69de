"""kill -9 at random moments under sustained ingest and delivery, and SIGTERM under load."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import PRODUCER_KEY, DaemonProcess, Receiver, Reply, route, webhook
from tests.reliability.helpers import missing_events, ready, record, wait_quiet

pytestmark = pytest.mark.e2e


class Producer:
    """Posts events (single and small batches) at a bounded rate while the daemon lives, dies and restarts;
    remembers every id answered 202. A request cut by a kill was never acknowledged, so it is not counted."""

    def __init__(self, daemon: DaemonProcess, workers: int = 3, pause: float = 0.01) -> None:
        self.daemon = daemon
        self.workers = workers
        self.pause = pause
        self.accepted: list[str] = []
        self.refused: Counter[str] = Counter()
        self.latencies: list[float] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._seq = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(n)) for n in range(self.workers)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _work(self, worker: int) -> None:
        session = self.daemon.http
        while not self._stop.is_set():
            self._seq += 1
            batch = self._seq % 4 == 0
            envelopes = [{"event": "crash.tick", "payload": {"n": self._seq, "i": i, "w": worker}}
                         for i in range(5 if batch else 1)]
            body = envelopes if batch else envelopes[0]
            started = time.monotonic()
            try:
                async with session.post(self.daemon.url + "/v1/events", json=body, headers={"x-api-key": PRODUCER_KEY},
                                        timeout=aiohttp.ClientTimeout(total=5)) as response:
                    data = await response.json(content_type=None)
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.refused[type(exc).__name__] += 1
                await asyncio.sleep(0.02)
                continue
            if status == 202:
                self.latencies.append(time.monotonic() - started)
                self.accepted += [e["id"] for e in data["events"]] if batch else [data["id"]]
            else:
                self.refused[str(status)] += 1
            await asyncio.sleep(self.pause)


def flaky(rng: random.Random, ok: Counter[str], fail_ratio: float = 0.1) -> Any:
    """A receiver answer: 500 one time in ten, else 200; counts the 200s per webhook-id."""
    def answer(request: Any) -> Reply:
        if rng.random() < fail_ratio:
            return Reply(status=500, body=b"flaky")
        ok[request.headers.get("webhook-id", "?")] += 1
        return Reply(status=200)

    return answer


async def run_crash_rounds(start_daemon: Any, receiver: Receiver, rounds: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    ok: Counter[str] = Counter()
    receiver.script("/hook", flaky(rng, ok))
    daemon = await start_daemon(channels=[webhook("hook", receiver.url(), concurrency=8)],
                                routes=[route("all", "*", ["hook"])], dispatch={"max_attempts": 8})
    producer = Producer(daemon)
    producer.start()
    kills_at: list[float] = []
    try:
        for _ in range(rounds):
            await asyncio.sleep(rng.uniform(1.5, 3.0))
            kills_at.append(len(producer.accepted))
            await daemon.kill9()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await daemon.start()
        await asyncio.sleep(1.0)  # some traffic after the last restart too
    finally:
        await producer.stop()

    accepted = producer.accepted
    assert len(accepted) == len(set(accepted))
    await wait_quiet(daemon, timeout=90)
    missing = await missing_events(daemon, accepted)
    assert not missing, f"{len(missing)} of {len(accepted)} events answered 202 are not in the store: {missing[:5]}"

    deliveries = await daemon.all_deliveries()
    daemon.bodies.clear()
    by_event = Counter(d["event_id"] for d in deliveries)
    assert all(by_event[i] == 1 for i in accepted), "every accepted event has its one delivery"
    states = Counter(d["state"] for d in deliveries)
    assert set(states) <= {"delivered", "dead"}, states
    delivered = [d for d in deliveries if d["state"] == "delivered"]
    seen_ok = {wid for wid, n in ok.items() if n}
    for d in delivered:
        assert f"msg_{d['event_id'].removeprefix('evt_')}_{d['id']}" in seen_ok, d
    duplicates = sum(1 for n in ok.values() if n > 1)
    seen_total = Counter(r.headers.get("webhook-id") for r in receiver.requests)
    return {
        "rounds": rounds, "accepted_202": len(accepted), "lost": 0, "deliveries": dict(states),
        "duplicates_delivered_twice": duplicates,
        "ids_seen_more_than_once_incl_500_retries": sum(1 for n in seen_total.values() if n > 1),
        "refused_while_down": dict(producer.refused),
    }


async def test_kill_9_three_rounds_loses_nothing(start_daemon, receiver):
    figures = await run_crash_rounds(start_daemon, receiver, rounds=3, seed=11)
    record("crash (kill -9, quick)", **figures)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_kill_9_twelve_rounds_loses_nothing(start_daemon, receiver):
    figures = await run_crash_rounds(start_daemon, receiver, rounds=12, seed=29)
    record("crash (kill -9, slow)", **figures)


# ------------------------------------------------------------------------------------------ SIGTERM


class WatchedReceiver(Receiver):
    """Also notes, for each request, whether its answer could still be written (the client was connected
    when the handler finished): an attempt cut in half by the daemon would show as `cut`."""

    def __init__(self) -> None:
        super().__init__()
        self.cut: list[str] = []
        self.answered: list[tuple[float, str, int]] = []

    async def _handle(self, request: Any) -> Any:
        response = await super()._handle(request)
        webhook_id = request.headers.get("webhook-id", "?")
        if request.transport is None or request.transport.is_closing():
            self.cut.append(webhook_id)
        else:
            self.answered.append((time.monotonic(), webhook_id, response.status))
        return response


def delivered_in_store(db_path: str) -> set[str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, event_id FROM deliveries WHERE state = 'delivered'").fetchall()
        outcomes = {r[0] for r in conn.execute("SELECT DISTINCT outcome FROM attempts")}
    finally:
        conn.close()
    assert outcomes <= {"delivered", "failed"}, outcomes
    return {f"msg_{event_id.removeprefix('evt_')}_{delivery_id}" for delivery_id, event_id in rows}


async def test_sigterm_under_load_drains_cleanly_and_never_redelivers(start_daemon):
    receiver = await WatchedReceiver().start()
    try:
        receiver.script("/hook", Reply(delay=0.4))  # slow, but well inside drain_timeout
        drain = 3.0
        daemon = await start_daemon(channels=[webhook("hook", receiver.url(), concurrency=8)],
                                    routes=[route("all", "*", ["hook"])], server={"drain_timeout": f"{drain}s"})
        producer = Producer(daemon, workers=2, pause=0.02)
        producer.start()
        await asyncio.sleep(2.0)
        in_flight = (await ready(daemon))["in_flight"]
        t0 = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = await daemon.wait_exit(drain + 5)
        stop_s = time.monotonic() - t0
        await producer.stop()
        assert code == 0
        assert stop_s <= drain + 2, f"took {stop_s:.1f}s to stop (drain_timeout {drain}s)"
        assert receiver.cut == [], f"attempts cut in half: {receiver.cut[:5]}"

        before = delivered_in_store(daemon.config["storage"]["path"])
        answered_ok = {wid for _, wid, status in receiver.answered if status == 200}
        assert before <= answered_ok
        restarted_at = time.monotonic()
        receiver.script("/hook", 200)
        await daemon.start()
        await wait_quiet(daemon, timeout=60)
        again = [wid for at, wid, _ in receiver.answered if at >= restarted_at and wid in before]
        assert again == [], f"{len(again)} deliveries recorded delivered were sent again after the restart"
        assert not await missing_events(daemon, producer.accepted)
        states = Counter(d["state"] for d in await daemon.all_deliveries())
        daemon.bodies.clear()
        assert set(states) == {"delivered"}, states
        record("graceful stop (SIGTERM under load)", drain_timeout_s=drain, exit_code=code,
               stop_seconds=round(stop_s, 2), in_flight_at_sigterm=in_flight, cut_attempts=0,
               delivered_before_stop=len(before), redelivered_after_restart=0, accepted_202=len(producer.accepted))
    finally:
        await receiver.close()


async def test_sigterm_with_a_hanging_receiver_stops_within_drain_timeout(start_daemon):
    receiver = await WatchedReceiver().start()
    try:
        receiver.script("/hook", Reply(delay=8.0))  # longer than drain_timeout: these attempts cannot finish
        drain = 1.0
        daemon = await start_daemon(channels=[webhook("hook", receiver.url(), concurrency=4, timeout="10s")],
                                    routes=[route("all", "*", ["hook"])], server={"drain_timeout": f"{drain}s"})
        ids = [(await daemon.post_event("hang.tick", {"n": n}))["id"] for n in range(4)]
        await receiver.wait_count(4, "/hook")
        t0 = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit(drain + 5) == 0
        stop_s = time.monotonic() - t0
        assert stop_s <= drain + 2, f"took {stop_s:.1f}s to stop (drain_timeout {drain}s)"
        # the abandoned attempts left no half-written row: the deliveries are still open, tried again later
        assert delivered_in_store(daemon.config["storage"]["path"]) == set()
        receiver.script("/hook", 200)
        await daemon.start()
        for event_id in ids:
            event = await daemon.wait_settled(event_id, 1)
            assert event["deliveries"][0]["state"] == "delivered"
        record("graceful stop (hanging receiver)", drain_timeout_s=drain, stop_seconds=round(stop_s, 2),
               redelivered_after_restart=len(ids))
    finally:
        await receiver.close()
