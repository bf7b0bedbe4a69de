"""Authentication: every /v1/ path needs a key; /v1/admin/ needs an admin key."""

from __future__ import annotations

import math
import time

from aiohttp import web

from alertd.api.errors import ApiError, error_response
from alertd.api.state import API_KEY, RUNTIME
from alertd.auth import ApiKey, presented_key
from alertd.live import Live

BEARER = {"WWW-Authenticate": "Bearer"}  # the challenge of every 401 (API keys, metrics tokens)


def authenticate(request: web.Request, path: str) -> web.Response | None:
    """None, with the caller's key in request[API_KEY], when it may go on; else the refusal to answer."""
    try:
        request[API_KEY] = admit(request.app[RUNTIME].live, request.headers.get("x-api-key"),
                                 request.headers.get("Authorization"), path)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)
    return None


def admit(live: Live, x_api_key: str | None, authorization: str | None, path: str) -> ApiKey:
    """The key the headers present, if it may call `path` now; else the refusal, raised. No HTTP objects:
    the ingest front (front.py) admits with it too."""
    presented = presented_key(x_api_key, authorization)
    if presented is None:
        raise ApiError(401, "unauthorized", "missing API key: send x-api-key or Authorization: Bearer",
                       headers=BEARER)
    key = live.lookup_key(presented)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key", headers=BEARER)
    if path.startswith("/v1/admin/") and not key.is_admin:
        raise ApiError(403, "forbidden", "this path needs an admin key")
    wait = live.throttle(key, time.monotonic())
    if wait > 0:
        raise ApiError(429, "rate_limited", f"key {key.name!r} is over its rate ({key.rate})",
                       headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return key
