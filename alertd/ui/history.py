"""What happened: the overview, events with their deliveries and attempts, replay, dead letters."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web

from alertd.api import params
from alertd.api.errors import ApiError
from alertd.api.state import Runtime
from alertd.model import DeliveryState, Envelope, Severity
from alertd.replay import ReplayError
from alertd.store import DeliveryFilter, EventFilter
from alertd.store import admin_ops as ops
from alertd.ui import queries
from alertd.ui.web import Page, safe_next, signed_in

PAGE_SIZE = 50
MAX_RETRY = 500
SEVERITIES = [s.label for s in Severity]
STATES = [s.value for s in DeliveryState]


def filters_of(query: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The filters a form sent, without the empty ones (an unset <select> sends "")."""
    return {n: query[n].strip() for n in names if query.get(n, "").strip()}


def page_url(path: str, filters: Mapping[str, str], cursor: str) -> str:
    return f"{path}?{urlencode({**filters, 'cursor': cursor})}"


@signed_in
async def overview(page: Page) -> web.StreamResponse:
    runtime = page.runtime
    reader = runtime.store.read
    now = time.time()
    recent_dead = await reader.list_deliveries(DeliveryFilter(state=DeliveryState.DEAD, limit=5))
    return page.render(
        "overview.html", active="overview",
        events_per_min=await queries.event_count_since(reader, now - 600) / 10,
        hour=await queries.outcomes_since(reader, now - 3600), day=await queries.outcomes_since(reader, now - 86400),
        depth=runtime.dispatcher.depth_by_severity(), backlog=await reader.open_counts(now),
        in_flight=runtime.dispatcher.in_flight,
        checks_down=sorted(n for n, c in runtime.scheduler.checks.items() if c.state.state == "down"),
        open_incidents=await queries.open_incident_count(reader), recent_dead=recent_dead)


@signed_in
async def events(page: Page) -> web.StreamResponse:
    shown = filters_of(page.request.query, ("event", "severity", "state", "since", "until"))
    query = {**shown, **filters_of(page.request.query, ("cursor",))}
    values: dict[str, Any] = {"active": "events", "filters": shown, "severities": SEVERITIES, "states": STATES,
                              "rows": [], "next_url": None, "error": "", "paged": False}
    try:
        f = EventFilter(pattern=params.pattern(query), severity=params.severity(query, "severity"),
                        since=params.instant(query, "since"), until=params.instant(query, "until"),
                        cursor=params.event_cursor(query), limit=PAGE_SIZE)
        state = params.state(query)
    except ApiError as exc:
        return page.render("events.html", status=400, **{**values, "error": exc.message})
    rows = await queries.list_events(page.runtime.store.read, f, state)
    if len(rows) == f.limit:
        values["next_url"] = page_url("/ui/events", shown, rows[-1][0].id)
    return page.render("events.html", **{**values, "rows": rows, "paged": "cursor" in query})


@signed_in
async def event(page: Page) -> web.StreamResponse:
    runtime = page.runtime
    found = await runtime.store.read.event(page.request.match_info["id"][:64])
    if found is None:
        return page.error(404, "No such event", "There is no event with that id (it may be past retention).")
    deliveries = await runtime.store.read.deliveries_for_event(found.id)
    attempts = await runtime.store.read.attempts_for([d.id for d in deliveries])
    routed_now = runtime.live.snapshot.routes.channels(Envelope(found.name, found.payload, found.severity))
    payload = orjson.dumps(found.payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return page.render("event.html", active="events", event=found, payload=payload, deliveries=deliveries,
                       attempts=attempts, routed_now=list(routed_now))


@signed_in
async def replay(page: Page) -> web.StreamResponse:
    event_id = page.request.match_info["id"][:64]
    back = f"/ui/events/{quote(event_id, safe='')}"  # the path's own id: escaped before it is a Location
    try:
        replayed = await page.runtime.replayer.replay_event(event_id, None)
    except ReplayError as exc:
        return page.back(back, "error", f"Replay refused: {exc.message}")
    if not replayed.deliveries:
        return page.back(back, "warn", "No route takes this event now: nothing was replayed.")
    made = ", ".join(f"{d.channel} (delivery {d.id})" for d in replayed.deliveries)
    return page.back(back, "ok", f"Replayed to {made}.")


# ---- dead letters -------------------------------------------------------------------------------

@signed_in
async def dead_letters(page: Page) -> web.StreamResponse:
    shown = filters_of(page.request.query, ("event", "channel"))
    query = {**shown, **filters_of(page.request.query, ("cursor",))}
    values: dict[str, Any] = {"active": "dlq", "filters": shown, "rows": [], "next_url": None, "error": "",
                              "channels": sorted(page.runtime.live.snapshot.channels)}
    try:
        f = DeliveryFilter(state=DeliveryState.DEAD, channel=query.get("channel"), pattern=params.pattern(query),
                           cursor=params.int_cursor(query), limit=PAGE_SIZE)
    except ApiError as exc:
        return page.render("dlq.html", status=400, **{**values, "error": exc.message})
    rows = await page.runtime.store.read.list_deliveries(f)
    if len(rows) == f.limit:
        values["next_url"] = page_url("/ui/dlq", shown, str(rows[-1][0].id))
    return page.render("dlq.html", **{**values, "rows": rows})


@signed_in
async def retry_dead_letters(page: Page) -> web.StreamResponse:
    form = await page.form()
    back = safe_next(form.get("back"))
    back = back if back == "/ui/dlq" or back.startswith("/ui/dlq?") else "/ui/dlq"
    ids = [params.row_id(r) for r in form.getall("ids", [])]
    if not ids or len(ids) > MAX_RETRY or None in ids:
        return page.back(back, "error", f"Choose 1 to {MAX_RETRY} dead deliveries to retry.")
    reopened = await retry_dead(page.runtime, [i for i in ids if i is not None])
    if not reopened:
        return page.back(back, "warn", "Nothing to retry: those deliveries are no longer dead.")
    return page.back(back, "ok", f"Retrying {len(reopened)} dead "
                     f"{'delivery' if len(reopened) == 1 else 'deliveries'} with a fresh attempt budget.")


async def retry_dead(runtime: Runtime, ids: list[int]) -> list[int]:
    """Dead deliveries back in the queue in place — what api.manage.retry_dead does after parsing."""
    reopened: list[int] = await runtime.store.writer.submit(lambda c: ops.reopen_dead(c, ids, time.time()))
    await runtime.dispatcher.take(reopened)
    return reopened
