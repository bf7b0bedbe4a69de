"""Liveness and readiness, unauthenticated: they say nothing an attacker could use."""

from __future__ import annotations

import time

from aiohttp import web

from alertd.api.errors import json_response
from alertd.api.state import RUNTIME


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "service": "alertd"})


async def ready(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    counts = await runtime.store.read.open_counts(time.time())
    store_ok = runtime.store.healthy
    is_ready = store_ok and runtime.accepting
    body = {
        "status": "ready" if is_ready else "not_ready",
        "store": "ok" if store_ok else "error",
        "accepting": runtime.accepting,
        "queue_depth": runtime.dispatcher.depth_by_severity(),
        "in_flight": runtime.dispatcher.in_flight,
        "open_deliveries": counts["open"],
        "due_backlog": counts["due"],
    }
    return json_response(body, status=200 if is_ready else 503)
