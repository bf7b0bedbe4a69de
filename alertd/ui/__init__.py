"""The operator web UI under /ui: server-rendered pages (Jinja2, autoescaped), plain CSS, no CDN.
Signed in with an admin key; the session lives in memory. `setup(app, runtime)` adds it to the API app."""

from __future__ import annotations

from aiohttp import web

from alertd.api.state import Runtime
from alertd.ui import channels, history, operations, routes, signin
from alertd.ui.web import UI, Ui, add_headers, static

__all__ = ["UI", "Ui", "setup"]


async def not_found(request: web.Request) -> web.StreamResponse:
    ui = request.app[UI]
    return ui.error(request, 404, "Not found", "There is no page here.", ui.session_of(request))


def setup(app: web.Application, runtime: Runtime) -> None:
    """Adds the /ui routes and static files. Idempotent: a second call changes nothing."""
    if UI in app:
        return
    app[UI] = Ui(runtime)
    app.on_response_prepare.append(add_headers)
    r = app.router
    r.add_get("/ui/static/{name}", static)
    r.add_get("/ui/login", signin.login_form)
    r.add_post("/ui/login", signin.login)
    r.add_post("/ui/logout", signin.logout)
    r.add_get("/ui", history.overview)
    r.add_get("/ui/", history.overview)
    r.add_get("/ui/events", history.events)
    r.add_get("/ui/events/{id}", history.event)
    r.add_post("/ui/events/{id}/replay", history.replay)
    r.add_get("/ui/dlq", history.dead_letters)
    r.add_post("/ui/dlq/retry", history.retry_dead_letters)
    r.add_get("/ui/channels", channels.channels)
    r.add_post("/ui/channels/{name}/test", channels.test_channel)
    r.add_get("/ui/routes", routes.routes)
    r.add_post("/ui/routes", routes.explain)
    r.add_get("/ui/checks", operations.checks)
    r.add_post("/ui/checks/{name}/pause", operations.pause_check)
    r.add_post("/ui/checks/{name}/resume", operations.resume_check)
    r.add_get("/ui/silences", operations.silences)
    r.add_post("/ui/silences", operations.create_silence)
    r.add_post("/ui/silences/{id}/expire", operations.expire_silence)
    r.add_get("/ui/incidents", operations.incidents)
    r.add_post("/ui/incidents/{id}/ack", operations.ack_incident)
    r.add_get("/ui/{tail:.*}", not_found)
