"""What on-call people act on: checks (pause, resume), silences (create, expire), incidents (ack).
Silences and incidents may not be switched on in this build yet: then their pages say so."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from alertd.api import params
from alertd.api.silences import MAX_IN_FORCE
from alertd.config import describe_validation_error
from alertd.scheduler import SchedulerError
from alertd.silences import Silence, SilenceDecl
from alertd.store import silence_ops
from alertd.ui import queries
from alertd.ui.routes import describe_set
from alertd.ui.web import Page, signed_in

# ---- checks -------------------------------------------------------------------------------------


@signed_in
async def checks(page: Page) -> web.StreamResponse:
    found = sorted(page.runtime.scheduler.checks.values(), key=lambda c: c.decl.name)
    return page.render("checks.html", active="checks", checks=found)


@signed_in
async def pause_check(page: Page) -> web.StreamResponse:
    return await _set_paused(page, True)


@signed_in
async def resume_check(page: Page) -> web.StreamResponse:
    return await _set_paused(page, False)


async def _set_paused(page: Page, paused: bool) -> web.StreamResponse:
    name = page.request.match_info["name"]
    try:
        check = await page.runtime.scheduler.set_paused(name, paused)
    except SchedulerError as exc:
        return page.back("/ui/checks", "error", exc.message)
    return page.back("/ui/checks", "ok", f"Check {name} is {check.state.state} now.")


# ---- silences -----------------------------------------------------------------------------------

def _book(page: Page) -> Any:
    return getattr(page.runtime, "silences", None)


@signed_in
async def silences(page: Page) -> web.StreamResponse:
    book = _book(page)
    rows = await _silence_rows(page) if book is not None else []
    return page.render("silences.html", active="silences", enabled=book is not None, rows=rows,
                       draft={"event": "", "duration": "2h", "comment": ""}, error="")


async def _silence_rows(page: Page) -> list[tuple[Silence, list[str], list[list[str]]]]:
    """The silences in force, each with its conditions in words."""
    found = await silence_ops.list_silences(page.runtime.store.read, "current", time.time(), 500)
    return [(s, *describe_set(s.matchers.conditions)) for s in found]


@signed_in
async def create_silence(page: Page) -> web.StreamResponse:
    book = _book(page)
    if book is None:
        return page.back("/ui/silences", "error", "Silences are not available in this alertd yet.")
    form = await page.form()
    draft = {k: form.get(k, "").strip() for k in ("event", "duration", "comment")}
    try:
        decl = SilenceDecl.model_validate({"event": draft["event"] or "*", "duration": draft["duration"] or None,
                                           "comment": draft["comment"], "creator": page.actor[:100]})
    except ValidationError as exc:
        rows = await _silence_rows(page)
        return page.render("silences.html", status=400, active="silences", enabled=True, rows=rows, draft=draft,
                           error=describe_validation_error(exc))
    if len(book.current()) >= MAX_IN_FORCE:
        return page.back("/ui/silences", "error", f"{MAX_IN_FORCE} silences are in force already; expire some first.")
    now = time.time()
    silence_id = await page.runtime.store.writer.submit(lambda c: silence_ops.insert_silence(c, decl, "api", now))
    await silence_ops.refresh(book, page.runtime.store.read)
    return page.back("/ui/silences", "ok", f"Silence {silence_id} on {decl.event} is in force.")


@signed_in
async def expire_silence(page: Page) -> web.StreamResponse:
    book = _book(page)
    silence_id = params.row_id(page.request.match_info["id"])
    if book is None or silence_id is None:
        return page.back("/ui/silences", "error", "No such silence.")
    now = time.time()
    expired = await page.runtime.store.writer.submit(lambda c: silence_ops.expire_silence(c, silence_id, now))
    await silence_ops.refresh(book, page.runtime.store.read)
    if not expired:
        return page.back("/ui/silences", "warn", f"Silence {silence_id} was not expired: it is declared in the config "
                         "file, or already over.")
    return page.back("/ui/silences", "ok", f"Silence {silence_id} expired.")


# ---- incidents ----------------------------------------------------------------------------------

def _ack(page: Page) -> Any:
    """The acknowledgement path in this build: `runtime.incidents.ack(id, actor)`, or the scheduler's."""
    ack = getattr(getattr(page.runtime, "incidents", None), "ack", None)
    return ack if ack is not None else getattr(page.runtime.scheduler, "ack_incident", None)


@signed_in
async def incidents(page: Page) -> web.StreamResponse:
    rows = await queries.incidents(page.runtime.store.read, "open")
    recent = [r for r in await queries.incidents(page.runtime.store.read, None, 20) if r.state != "open"]
    return page.render("incidents.html", active="incidents", rows=rows, recent=recent,
                       can_ack=_ack(page) is not None)


ACK_ANSWERS = {"used": "that acknowledgement was already used", "not_open": "it is no longer open",
               "missing": "there is no such incident"}


@signed_in
async def ack_incident(page: Page) -> web.StreamResponse:
    ack = _ack(page)
    raw = page.request.match_info["id"]
    if ack is None:
        return page.back("/ui/incidents", "error", "Acknowledging is not available in this alertd yet.")
    incident_id = params.row_id(raw)
    if incident_id is None:
        return page.back("/ui/incidents", "error", "No such incident.")
    try:
        result = await ack(incident_id, page.actor)
    except SchedulerError as exc:
        return page.back("/ui/incidents", "error", f"Incident {raw} not acknowledged: {exc.message}")
    outcome = getattr(result, "outcome", "acked")
    if outcome != "acked":
        why = ACK_ANSWERS.get(str(outcome), str(outcome))
        return page.back("/ui/incidents", "warn", f"Incident {raw} not acknowledged: {why}.")
    return page.back("/ui/incidents", "ok", f"Incident {raw} acknowledged: escalation stopped.")
