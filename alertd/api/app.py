"""The aiohttp application: routes, limits, and the guard every route runs in."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from alertd import ui
from alertd.api import admin, checks, events, health, hooks, links, manage, metrics, openapi, silences
from alertd.api.guard import add_route, unmatched
from alertd.api.state import MAX_BODY, RUNTIME, Runtime

ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/checks/{name}/{signal}", checks.ping),
    ("POST", "/v1/expectations", checks.post_expectation),
    ("POST", "/v1/outcomes", checks.post_outcome),
    ("GET", "/v1/admin/checks", checks.list_checks),
    ("POST", "/v1/admin/checks", checks.create_check),
    ("GET", "/v1/admin/checks/{name}", checks.get_check),
    ("PATCH", "/v1/admin/checks/{name}", checks.patch_check),
    ("DELETE", "/v1/admin/checks/{name}", checks.delete_check),
    ("POST", "/v1/admin/checks/{name}/pause", checks.pause_check),
    ("POST", "/v1/admin/checks/{name}/resume", checks.resume_check),
    ("GET", "/health", health.health),
    ("GET", "/ready", health.ready),
    ("GET", "/metrics", metrics.serve),
    ("POST", "/v1/events", metrics.timed_ingest(events.post_events)),
    ("POST", "/v1/hooks/alertmanager", hooks.post_alertmanager),
    ("POST", "/v1/hooks/{name}", hooks.post_hook),
    ("GET", "/v1/admin/events", admin.list_events),
    ("GET", "/v1/admin/events/{id}", admin.get_event),
    ("POST", "/v1/admin/events/{id}/replay", admin.replay_event),
    ("GET", "/v1/admin/deliveries", admin.list_deliveries),
    ("POST", "/v1/admin/deliveries/replay", admin.replay_deliveries),
    ("GET", "/v1/admin/dlq", manage.list_dead),
    ("POST", "/v1/admin/dlq/retry", manage.retry_dead),
    ("GET", "/v1/admin/channels", manage.list_channels),
    ("POST", "/v1/admin/channels", manage.create_channel),
    ("GET", "/v1/admin/channels/{name}", manage.get_channel),
    ("PATCH", "/v1/admin/channels/{name}", manage.patch_channel),
    ("DELETE", "/v1/admin/channels/{name}", manage.delete_channel),
    ("POST", "/v1/admin/channels/{name}/test", manage.test_channel),
    ("GET", "/v1/admin/routes", manage.list_routes),
    ("POST", "/v1/admin/routes", manage.create_route),
    ("POST", "/v1/admin/routes/test", manage.test_routes),
    ("GET", "/v1/admin/routes/{name}", manage.get_route),
    ("PATCH", "/v1/admin/routes/{name}", manage.patch_route),
    ("DELETE", "/v1/admin/routes/{name}", manage.delete_route),
    ("GET", "/v1/admin/keys", manage.list_keys),
    ("POST", "/v1/admin/keys", manage.create_key),
    ("DELETE", "/v1/admin/keys/{name}", manage.revoke_key),
    ("GET", "/v1/admin/catalog", manage.catalog),
    ("POST", "/v1/admin/reload", manage.reload_config),
    ("GET", "/v1/admin/openapi.json", openapi.serve),
    ("GET", "/v1/admin/incidents", manage.list_incidents),
    ("POST", "/v1/admin/incidents/{id}/ack", manage.ack_incident),
    ("GET", "/v1/admin/audit", manage.list_audit),
    ("GET", "/v1/admin/silences", silences.list_silences),
    ("POST", "/v1/admin/silences", silences.create_silence),
    ("GET", "/v1/admin/silences/{id}", silences.get_silence),
    ("DELETE", "/v1/admin/silences/{id}", silences.expire_silence),
    ("GET", "/ack/{token}", links.ack_preview),
    ("POST", "/ack/{token}", links.ack_post),
    ("GET", "/approve/{token}", links.approve_preview),
    ("POST", "/approve/{token}", links.approve_post),
]


# aiohttp's parser limits for a request line and a header; the ingest front (front.py) hands over past them
MAX_LINE_SIZE = 8192
MAX_FIELD_SIZE = 16384


def build_app(runtime: Runtime) -> web.Application:
    limit = runtime.config.server.max_body_bytes
    # no middlewares: every route is added inside `guarded` instead (guard.py says why)
    app = web.Application(client_max_size=limit, handler_args={"max_field_size": MAX_FIELD_SIZE,
                                                               "max_line_size": MAX_LINE_SIZE})
    app[RUNTIME] = runtime
    app[MAX_BODY] = limit
    for method, path, handler in ROUTES:
        add_route(app, method, path, handler)
    ui.setup(app, runtime)  # /ui pages: guarded too, but by the UI's own session, not an API key
    add_route(app, "*", "/{tail:.*}", unmatched, ui.with_page_headers)  # last: JSON 404/405 for the rest
    return app
