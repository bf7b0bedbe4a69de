"""GET /ack/{token} and /approve/{token} preview and change nothing (mail scanners and chat unfurlers
fetch links); POST acts. The signed token is the credential, so these pages need no API key."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from aiohttp import web
from jinja2 import Environment, select_autoescape

from alertd.api.state import RUNTIME
from alertd.durations import iso
from alertd.links import LinkError
from alertd.model import Severity
from alertd.store.reads import action_request, incident

_PAGES = Environment(autoescape=select_autoescape(default=True))
_TEMPLATE = _PAGES.from_string(files("alertd.api").joinpath("templates/link.html").read_text())
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                      "frame-ancestors 'none'"}


def page(status: int, title: str, message: str, *, details: list[tuple[str, Any]] | None = None,
         button: str | None = None, tone: str = "") -> web.Response:
    html = _TEMPLATE.render(title=title, message=message, details=details or [], button=button, tone=tone)
    return web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)


def refused(exc: LinkError) -> web.Response:
    return page(exc.status, "This link cannot be used", exc.message, tone="error")


async def ack_preview(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        claim = runtime.incidents.check_link(request.match_info["token"], "ack")
    except LinkError as exc:
        return refused(exc)
    found = await incident(runtime.store.read, claim.subject)
    if found is None:
        return page(404, "Incident not found", "This incident no longer exists.", tone="error")
    details = [("Event", found["event"]), ("Severity", Severity(found["severity"]).label),
               ("Opened", iso(found["opened_at"])), ("State", found["state"])]
    if found["state"] != "open":
        return page(200, "Already handled", f"This incident is {found['state']}.", details=details, tone="ok")
    return page(200, "Acknowledge this incident?", "Acknowledging stops further escalation.", details=details,
                button="Acknowledge")


async def ack_post(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        result = await runtime.incidents.ack_link(runtime.incidents.check_link(request.match_info["token"], "ack"))
    except LinkError as exc:
        return refused(exc)
    if result.outcome == "acked":
        return page(200, "Acknowledged", "Escalation has stopped. Thank you.", tone="ok")
    if result.outcome == "missing":
        return page(404, "Incident not found", "This incident no longer exists.", tone="error")
    return page(409, "Already handled", f"This incident is already {result.state}.", tone="ok")


async def approve_preview(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        claim = runtime.incidents.check_link(request.match_info["token"], "approve")
    except LinkError as exc:
        return refused(exc)
    found = await action_request(runtime.store.read, claim.subject)
    if found is None:
        return page(404, "Action not found", "This action no longer exists.", tone="error")
    details = [("Action", found["label"]), ("Name", found["action"]), ("Requested", iso(found["created_at"])),
               ("State", found["state"])]
    if found["state"] != "pending":
        return page(200, "Already decided", f"This action is {found['state']}.", details=details, tone="ok")
    return page(200, f"Approve “{found['label']}”?", "Nothing runs until you confirm.", details=details,
                button="Approve")


async def approve_post(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        found = await runtime.incidents.approve_link(runtime.incidents.check_link(request.match_info["token"],
                                                                                  "approve"))
    except LinkError as exc:
        return refused(exc)
    return page(200, "Approved", f"“{found['label']}” was approved and is being carried out.", tone="ok")
