"""Authentication: every /v1/ path needs a key; /v1/admin/ needs an admin key."""

from __future__ import annotations

import math
import time

from aiohttp import web

from alertd.api.errors import error_response
from alertd.api.state import API_KEY, RUNTIME
from alertd.auth import presented_key

BEARER = {"WWW-Authenticate": "Bearer"}  # the challenge of every 401 (API keys, metrics tokens)


def authenticate(request: web.Request, path: str) -> web.Response | None:
    """None, with the caller's key in request[API_KEY], when it may go on; else the refusal to answer."""
    presented = presented_key(request.headers.get("x-api-key"), request.headers.get("Authorization"))
    if presented is None:
        return error_response(401, "unauthorized", "missing API key: send x-api-key or Authorization: Bearer",
                              headers=BEARER)
    live = request.app[RUNTIME].live
    key = live.lookup_key(presented)
    if key is None:
        return error_response(401, "unauthorized", "unknown or revoked API key", headers=BEARER)
    if path.startswith("/v1/admin/") and not key.is_admin:
        return error_response(403, "forbidden", "this path needs an admin key")
    wait = live.throttle(key, time.monotonic())
    if wait > 0:
        return error_response(429, "rate_limited", f"key {key.name!r} is over its rate ({key.rate})",
                              headers={"Retry-After": str(max(1, math.ceil(wait)))})
    request[API_KEY] = key
    return None
