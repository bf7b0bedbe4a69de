"""Channels in force with how they have been doing, and a test send."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from alertd.api import manage
from alertd.api.errors import ApiError
from alertd.ui import queries
from alertd.ui.web import Page, signed_in


@dataclass(frozen=True, slots=True)
class ChannelRow:
    name: str
    type: str
    managed: str
    hour: queries.Outcomes
    day: queries.Outcomes
    last_error: tuple[float, str] | None
    config: dict[str, Any]  # manage.channel_view's: secrets masked, URLs redacted


@signed_in
async def channels(page: Page) -> web.StreamResponse:
    runtime = page.runtime
    reader = runtime.store.read
    now = time.time()
    hour = await queries.channel_outcomes_since(reader, now - 3600)
    day = await queries.channel_outcomes_since(reader, now - 86400)
    errors = await queries.channel_last_errors(reader, now - 86400)
    empty = queries.Outcomes({})
    rows = []
    for name in sorted(runtime.live.snapshot.channels):
        view = manage.channel_view(runtime, name)
        rows.append(ChannelRow(name, view["type"], view["managed"], hour.get(name, empty), day.get(name, empty),
                               errors.get(name), view["config"]))
    return page.render("channels.html", active="channels", rows=rows)


@signed_in
async def test_channel(page: Page) -> web.StreamResponse:
    """Runs api.manage.test_channel (it reads the name from this route's match_info too)."""
    name = page.request.match_info["name"]
    try:
        answer = await manage.test_channel(page.request)
    except ApiError as exc:
        return page.back("/ui/channels", "error", exc.message)
    assert answer.body is not None
    result = orjson.loads(answer.body)  # type: ignore[arg-type]
    if result["ok"]:
        status = f"HTTP {result['status']}, " if result.get("status") else ""
        return page.back("/ui/channels", "ok", f"Test message to {name}: sent ({status}{result['latency_ms']} ms).")
    retry = " (a retry could succeed)" if result.get("retryable") else ""
    return page.back("/ui/channels", "error", f"Test message to {name} failed: {result['error']}{retry}.")
