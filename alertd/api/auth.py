"""Authentication: every /v1/ path needs a key; /v1/admin/ needs an admin key."""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from alertd.api.errors import error_response
from alertd.api.state import API_KEY, RUNTIME
from alertd.auth import presented_key


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    path = request.path
    if not path.startswith("/v1/"):
        return await handler(request)
    presented = presented_key(request.headers.get("x-api-key"), request.headers.get("Authorization"))
    if presented is None:
        return error_response(401, "unauthorized", "missing API key: send x-api-key or Authorization: Bearer",
                              headers={"WWW-Authenticate": "Bearer"})
    key = request.app[RUNTIME].live.lookup_key(presented)
    if key is None:
        return error_response(401, "unauthorized", "unknown or revoked API key",
                              headers={"WWW-Authenticate": "Bearer"})
    if path.startswith("/v1/admin/") and not key.is_admin:
        return error_response(403, "forbidden", "this path needs an admin key")
    wait = request.app[RUNTIME].live.throttle(key, time.monotonic())
    if wait > 0:
        return error_response(429, "rate_limited", f"key {key.name!r} is over its rate ({key.rate})",
                              headers={"Retry-After": str(max(1, math.ceil(wait)))})
    request[API_KEY] = key
    return await handler(request)
