"""What survives a crash and what a clean shutdown promises."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from tests.integration.conftest import PRODUCER_KEY, Reply, free_port, parse_log, route, webhook

pytestmark = pytest.mark.e2e


async def test_kill_9_with_1000_pending_deliveries_loses_none(start_daemon, make_receiver):
    port = free_port()
    receiver = await make_receiver(port=port, start=False)  # nobody answers yet: nothing can be delivered
    daemon = await start_daemon(
        channels=[webhook("hook", receiver.url(), concurrency=16)], routes=[route("all", "*", ["hook"])],
        dispatch={"max_attempts": 100})

    ids: list[str] = []
    for batch in range(2):
        response = await daemon.post_events(
            [{"event": "orders.created", "payload": {"n": batch * 500 + n}} for n in range(500)])
        assert response.status == 202, response.body
        accepted = response.json()["events"]
        assert len(accepted) == 500 and all(a["deliveries"] == 1 and not a["duplicate"] for a in accepted)
        ids += [a["id"] for a in accepted]
    assert len(set(ids)) == 1000
    await daemon.kill9()

    receiver.script("/hook", 200)
    await receiver.start()
    assert receiver.port == port
    await daemon.start()

    await receiver.wait_for(lambda rs: set(ids) <= {r.event_id for r in rs}, timeout=30.0,
                            what="every one of the 1000 events at the receiver")
    delivered = await daemon.wait_for(
        lambda: _count(daemon.all_deliveries(state="delivered"), 1000), timeout=10.0, what="1000 delivered")
    assert {d["event_id"] for d in delivered} == set(ids)
    assert {e["id"] for e in await daemon.all_events()} == set(ids)
    assert await daemon.all_deliveries(state="dead") == []


async def _count(rows_coro, expected: int):
    rows = await rows_coro
    return rows if len(rows) == expected else None


async def test_sigterm_drains_refuses_new_events_and_exits_0(start_daemon, receiver):
    slow_phase = True

    def answer(request):
        return Reply(delay=1.0) if slow_phase else Reply()

    receiver.script("/hook", answer)
    drain_timeout = 2.0
    daemon = await start_daemon(channels=[webhook("hook", receiver.url(), concurrency=4)],
                                routes=[route("all", "*", ["hook"])], server={"drain_timeout": "2s"})

    # Light load: one event every 20 ms, until the receiver is busy with some of them.
    accepted: list[str] = []
    for n in range(15):
        accepted.append((await daemon.post_event("jobs.finished", {"n": n}))["id"])
        await asyncio.sleep(0.02)
    await receiver.wait_count(1)

    t_term = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    await daemon.wait_for(lambda: any(r.get("event") == "draining" for r in parse_log(daemon.last_stderr)),
                          timeout=2.0, what="the 'draining' log line")

    # From here on no POST is accepted: 503 while draining, then the port closes.
    refused_503 = 0
    while True:
        try:
            response = await daemon.post_events({"event": "jobs.finished", "payload": {}}, PRODUCER_KEY)
        except aiohttp.ClientConnectionError:
            break
        assert response.status == 503, (response.status, response.body)
        assert response.json()["error"]["code"] == "shutting_down"
        assert response.headers["retry-after"] == "5"
        refused_503 += 1
        await asyncio.sleep(0.02)
    assert refused_503 > 0  # attempts were in flight (1 s each), so the drain took a while
    slow_phase = False

    code = await daemon.wait_exit(drain_timeout + 2.0 - (time.monotonic() - t_term))
    assert code == 0
    assert time.monotonic() - t_term < drain_timeout + 2.0
    drained = [r for r in daemon.log_records() if r.get("event") == "drained"]
    assert drained == [{**drained[0], "all_attempts_finished": True}]

    # Every acknowledged event is still there after a restart, and all are delivered.
    await daemon.start()
    for event_id in accepted:
        await daemon.wait_settled(event_id, 1, timeout=10.0)
    assert {e["id"] for e in await daemon.all_events()} == set(accepted)
    assert len(await daemon.all_deliveries(state="delivered")) == len(accepted)
