"""Receivers behaving badly, each behind its own channel, while a healthy channel keeps its latency."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.integration.conftest import Reply, free_port, route, webhook
from tests.reliability.helpers import (
    HUGE_BYTES,
    RawServer,
    huge_body,
    never_answer,
    one_byte_per_second,
    parse_iso,
    percentile,
    record,
    reset_after_headers,
    self_signed_cert,
)

pytestmark = pytest.mark.e2e

TIMEOUT_S = 2.0
LATENCY_BOUND_S = 1.0


async def tls_server(tmp_path: Path) -> tuple[web.AppRunner, int] | None:
    made = self_signed_cert(tmp_path)
    if made is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*made)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="should never be reached")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, int(runner.addresses[0][1])


# name → (outcome of the first attempt, check of its error, its http_status, attempts in the end, final state)
Expect = tuple[str, Callable[[str | None], bool], int | None, int, str]
MAX_ATTEMPTS = {"r429ra": 3, "r429": 3, "redirect": 3}  # others: 2


async def measure_healthy(daemon: Any, receiver: Any, count: int, tag: str) -> list[float]:
    """Posts `count` events to the healthy channel at ~20/s; latency = post sent → request at the receiver."""
    sent: dict[str, float] = {}
    for n in range(count):
        t0 = time.monotonic()
        event_id = (await daemon.post_event("ok.ping", {"n": n, "phase": tag}))["id"]
        sent[event_id] = t0
        await asyncio.sleep(0.05)
    def arrived(requests: list[Any]) -> dict[str | None, Any] | None:
        found = {r.event_id: r for r in requests if r.event_id in sent}
        return found if len(found) >= count else None

    found = await receiver.wait_for(arrived, timeout=20, what=f"{count} healthy deliveries")
    return [found[i].arrived - t0 for i, t0 in sent.items()]


async def test_bad_receivers_are_classified_and_do_not_slow_a_healthy_channel(start_daemon, make_receiver, tmp_path):
    healthy = await make_receiver()
    bad = await make_receiver()
    bad.script("/500", Reply(status=500, body=b"boom"))
    bad.script("/429ra", Reply(status=429, headers={"Retry-After": "2"}), 200)
    bad.script("/429", 429, 200)
    bad.script("/redirect", Reply(status=302, headers={"Location": "http://10.0.0.1/hook"}))
    raws = {name: await RawServer(behaviour).start() for name, behaviour in
            [("reset", reset_after_headers), ("hang", never_answer), ("trickle", one_byte_per_second),
             ("huge", huge_body)]}
    tls = await tls_server(tmp_path)
    closed_port = free_port()
    urls = {"r500": bad.url("/500"), "r429ra": bad.url("/429ra"), "r429": bad.url("/429"),
            "refused": f"http://127.0.0.1:{closed_port}/hook", "redirect": bad.url("/redirect"),
            **{name: server.url() for name, server in raws.items()}}
    if tls is not None:
        urls["tls"] = f"https://127.0.0.1:{tls[1]}/hook"
    expect: dict[str, Expect] = {
        "r500": ("failed", lambda e: e is not None and e.startswith("HTTP 500"), 500, 2, "dead"),
        "r429ra": ("failed", lambda e: e is not None and e.startswith("HTTP 429"), 429, 2, "delivered"),
        "r429": ("failed", lambda e: e is not None and e.startswith("HTTP 429"), 429, 2, "delivered"),
        "refused": ("failed", lambda e: e is not None and e.startswith("connection failed"), None, 2, "dead"),
        "redirect": ("failed", lambda e: e == "HTTP 302: redirect not followed", 302, 1, "dead"),
        "reset": ("failed", lambda e: e is not None and e.startswith("connection failed"), None, 2, "dead"),
        "hang": ("failed", lambda e: e is not None and e.startswith("timed out after 2."), None, 2, "dead"),
        "trickle": ("failed", lambda e: e is not None and e.startswith("timed out after 2."), None, 2, "dead"),
        "huge": ("delivered", lambda e: e is None, 200, 1, "delivered"),
        "tls": ("failed", lambda e: e == "TLS certificate verification failed", None, 2, "dead"),
    }
    try:
        channels = [webhook("healthy", healthy.url("/ok"), timeout="2s")]
        routes = [route("healthy", "ok.*", ["healthy"])]
        for name, url in urls.items():
            channels.append(webhook(name, url, timeout=f"{TIMEOUT_S}s", max_attempts=MAX_ATTEMPTS.get(name, 2)))
            routes.append(route(name, f"bad.{name}", [name]))
        daemon = await start_daemon(channels=channels, routes=routes)

        baseline = await measure_healthy(daemon, healthy, 40, "baseline")
        first: dict[str, str] = {}
        for name in urls:  # 12 events per bad channel: more than its 8 workers, so its lane stays full
            for n in range(12):
                accepted = await daemon.post_event(f"bad.{name}", {"n": n})
                first.setdefault(name, accepted["id"])
        await asyncio.sleep(0.3)
        loaded = await measure_healthy(daemon, healthy, 40, "bad")

        settled = {name: await daemon.wait_settled(event_id, 1, timeout=30) for name, event_id in first.items()}
        seen: dict[str, str | None] = {}
        for name, event in settled.items():
            outcome, error_ok, status, attempts, final = expect[name]
            delivery = event["deliveries"][0]
            tries = delivery["attempts_list"]
            assert delivery["state"] == final, (name, delivery)
            assert len(tries) == attempts, (name, tries)
            one = tries[0]
            seen[name] = one["error"]
            assert one["outcome"] == outcome, (name, one)
            assert error_ok(one["error"]), (name, one)
            assert one["http_status"] == status, (name, one)
            if name in ("hang", "trickle"):
                assert TIMEOUT_S * 1000 - 50 <= one["duration_ms"] <= TIMEOUT_S * 1000 + 1000, (name, one)
            if name == "huge":
                assert one["duration_ms"] < TIMEOUT_S * 1000, one
        # 429 with Retry-After: 2 → the next attempt is not earlier than 2 s after the 429 came back
        ra = settled["r429ra"]["deliveries"][0]["attempts_list"]
        gap_ra = parse_iso(ra[1]["started_at"]) - (parse_iso(ra[0]["started_at"]) + ra[0]["duration_ms"] / 1000)
        assert gap_ra >= 2.0 - 0.01, gap_ra
        plain = settled["r429"]["deliveries"][0]["attempts_list"]
        gap_plain = parse_iso(plain[1]["started_at"]) - (parse_iso(plain[0]["started_at"])
                                                        + plain[0]["duration_ms"] / 1000)
        assert gap_plain < 1.0, gap_plain  # no Retry-After: ordinary backoff (cap 200 ms here)
        # the 100 MB answer: alertd read its 64 KiB prefix and hung up
        huge_sent = max(raws["huge"].per_connection)
        assert huge_sent < HUGE_BYTES // 4, raws["huge"].per_connection
        assert len(bad.at("/redirect")) == 12  # one attempt per event: a 3xx is permanent, never followed

        p95_base, p95_bad = percentile(baseline, 95), percentile(loaded, 95)
        assert p95_base < LATENCY_BOUND_S and p95_bad < LATENCY_BOUND_S, (p95_base, p95_bad)
        record("bad receivers", healthy_p95_ms_without_bad=round(p95_base * 1000, 1),
               healthy_p95_ms_with_bad=round(p95_bad * 1000, 1),
               healthy_max_ms_with_bad=round(max(loaded) * 1000, 1),
               retry_after_gap_s=round(gap_ra, 3), no_retry_after_gap_s=round(gap_plain, 3),
               huge_response_max_bytes_sent_before_hangup=huge_sent, tls_checked=tls is not None,
               errors={k: (v or "")[:60] for k, v in seen.items()})
    finally:
        for server in raws.values():
            await server.close()
        if tls is not None:
            await tls[0].cleanup()
