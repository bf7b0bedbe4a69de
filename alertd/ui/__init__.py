"""The operator web UI under /ui: server-rendered pages (Jinja2, autoescaped), plain CSS, no CDN.
Signed in with an admin key; the session lives in memory. `setup(app, runtime)` adds it to the API app."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from alertd.api.guard import add_route
from alertd.api.state import Runtime
from alertd.ui import channels, history, operations, routes, signin
from alertd.ui.web import UI, Ui, static, with_page_headers

__all__ = ["UI", "Ui", "setup", "with_page_headers"]


async def not_found(request: web.Request) -> web.StreamResponse:
    ui = request.app[UI]
    return ui.error(request, 404, "Not found", "There is no page here.", ui.session_of(request))


PAGES: list[tuple[str, str, Handler]] = [
    ("GET", "/ui/static/{name}", static),
    ("GET", "/ui/login", signin.login_form),
    ("POST", "/ui/login", signin.login),
    ("POST", "/ui/logout", signin.logout),
    ("GET", "/ui", history.overview),
    ("GET", "/ui/", history.overview),
    ("GET", "/ui/events", history.events),
    ("GET", "/ui/events/{id}", history.event),
    ("POST", "/ui/events/{id}/replay", history.replay),
    ("GET", "/ui/dlq", history.dead_letters),
    ("POST", "/ui/dlq/retry", history.retry_dead_letters),
    ("GET", "/ui/channels", channels.channels),
    ("POST", "/ui/channels/{name}/test", channels.test_channel),
    ("GET", "/ui/routes", routes.routes),
    ("POST", "/ui/routes", routes.explain),
    ("GET", "/ui/checks", operations.checks),
    ("POST", "/ui/checks/{name}/pause", operations.pause_check),
    ("POST", "/ui/checks/{name}/resume", operations.resume_check),
    ("GET", "/ui/silences", operations.silences),
    ("POST", "/ui/silences", operations.create_silence),
    ("POST", "/ui/silences/{id}/expire", operations.expire_silence),
    ("GET", "/ui/incidents", operations.incidents),
    ("POST", "/ui/incidents/{id}/ack", operations.ack_incident),
    ("GET", "/ui/{tail:.*}", not_found),
]


def setup(app: web.Application, runtime: Runtime) -> None:
    """Adds the /ui routes and static files. Idempotent: a second call changes nothing."""
    if UI in app:
        return
    app[UI] = Ui(runtime)
    for method, path, handler in PAGES:
        # page headers outermost, so the guard's own answers (413, 500) carry them too
        add_route(app, method, path, handler, with_page_headers)
