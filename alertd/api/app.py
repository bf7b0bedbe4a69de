"""The aiohttp application: routes, middlewares, limits."""

from __future__ import annotations

from aiohttp import web

from alertd.api import admin, events, health
from alertd.api.auth import auth_middleware
from alertd.api.errors import error_middleware
from alertd.api.state import MAX_BODY, RUNTIME, Runtime


def build_app(runtime: Runtime) -> web.Application:
    limit = runtime.config.server.max_body_bytes
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=limit,
                          handler_args={"max_field_size": 16384, "max_line_size": 8192})
    app[RUNTIME] = runtime
    app[MAX_BODY] = limit
    app.router.add_get("/health", health.health)
    app.router.add_get("/ready", health.ready)
    app.router.add_post("/v1/events", events.post_events)
    app.router.add_get("/v1/admin/events", admin.list_events)
    app.router.add_get("/v1/admin/events/{id}", admin.get_event)
    app.router.add_post("/v1/admin/events/{id}/replay", admin.replay_event)
    app.router.add_get("/v1/admin/deliveries", admin.list_deliveries)
    app.router.add_post("/v1/admin/deliveries/replay", admin.replay_deliveries)
    return app
