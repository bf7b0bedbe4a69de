"""The aiohttp application: routes, middlewares, limits."""

from __future__ import annotations

from aiohttp import web

from alertd import ui
from alertd.api import admin, checks, events, health, hooks, links, manage, metrics, openapi, silences
from alertd.api.auth import auth_middleware
from alertd.api.errors import error_middleware
from alertd.api.state import MAX_BODY, RUNTIME, Runtime


def build_app(runtime: Runtime) -> web.Application:
    limit = runtime.config.server.max_body_bytes
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=limit,
                          handler_args={"max_field_size": 16384, "max_line_size": 8192})
    app[RUNTIME] = runtime
    app[MAX_BODY] = limit
    app.router.add_post("/v1/checks/{name}/{signal}", checks.ping)
    app.router.add_post("/v1/expectations", checks.post_expectation)
    app.router.add_post("/v1/outcomes", checks.post_outcome)
    app.router.add_get("/v1/admin/checks", checks.list_checks)
    app.router.add_post("/v1/admin/checks", checks.create_check)
    app.router.add_get("/v1/admin/checks/{name}", checks.get_check)
    app.router.add_patch("/v1/admin/checks/{name}", checks.patch_check)
    app.router.add_delete("/v1/admin/checks/{name}", checks.delete_check)
    app.router.add_post("/v1/admin/checks/{name}/pause", checks.pause_check)
    app.router.add_post("/v1/admin/checks/{name}/resume", checks.resume_check)
    app.router.add_get("/health", health.health)
    app.router.add_get("/ready", health.ready)
    app.router.add_get("/metrics", metrics.serve)
    app.router.add_post("/v1/events", metrics.timed_ingest(events.post_events))
    app.router.add_post("/v1/hooks/alertmanager", hooks.post_alertmanager)
    app.router.add_post("/v1/hooks/{name}", hooks.post_hook)
    app.router.add_get("/v1/admin/events", admin.list_events)
    app.router.add_get("/v1/admin/events/{id}", admin.get_event)
    app.router.add_post("/v1/admin/events/{id}/replay", admin.replay_event)
    app.router.add_get("/v1/admin/deliveries", admin.list_deliveries)
    app.router.add_post("/v1/admin/deliveries/replay", admin.replay_deliveries)
    app.router.add_get("/v1/admin/dlq", manage.list_dead)
    app.router.add_post("/v1/admin/dlq/retry", manage.retry_dead)
    app.router.add_get("/v1/admin/channels", manage.list_channels)
    app.router.add_post("/v1/admin/channels", manage.create_channel)
    app.router.add_get("/v1/admin/channels/{name}", manage.get_channel)
    app.router.add_patch("/v1/admin/channels/{name}", manage.patch_channel)
    app.router.add_delete("/v1/admin/channels/{name}", manage.delete_channel)
    app.router.add_post("/v1/admin/channels/{name}/test", manage.test_channel)
    app.router.add_get("/v1/admin/routes", manage.list_routes)
    app.router.add_post("/v1/admin/routes", manage.create_route)
    app.router.add_post("/v1/admin/routes/test", manage.test_routes)
    app.router.add_get("/v1/admin/routes/{name}", manage.get_route)
    app.router.add_patch("/v1/admin/routes/{name}", manage.patch_route)
    app.router.add_delete("/v1/admin/routes/{name}", manage.delete_route)
    app.router.add_get("/v1/admin/keys", manage.list_keys)
    app.router.add_post("/v1/admin/keys", manage.create_key)
    app.router.add_delete("/v1/admin/keys/{name}", manage.revoke_key)
    app.router.add_get("/v1/admin/catalog", manage.catalog)
    app.router.add_post("/v1/admin/reload", manage.reload_config)
    app.router.add_get("/v1/admin/openapi.json", openapi.serve)
    app.router.add_get("/v1/admin/incidents", manage.list_incidents)
    app.router.add_post("/v1/admin/incidents/{id}/ack", manage.ack_incident)
    app.router.add_get("/v1/admin/audit", manage.list_audit)
    app.router.add_get("/v1/admin/silences", silences.list_silences)
    app.router.add_post("/v1/admin/silences", silences.create_silence)
    app.router.add_get("/v1/admin/silences/{id}", silences.get_silence)
    app.router.add_delete("/v1/admin/silences/{id}", silences.expire_silence)
    app.router.add_get("/ack/{token}", links.ack_preview)
    app.router.add_post("/ack/{token}", links.ack_post)
    app.router.add_get("/approve/{token}", links.approve_preview)
    app.router.add_post("/approve/{token}", links.approve_post)
    ui.setup(app, runtime)  # /ui pages and /ui/static; guarded by the UI's own session, not auth_middleware
    return app
