"""Authentication: every /v1/ path needs a key; /v1/admin/ needs an admin key."""

from __future__ import annotations

import math
import time

from alertd.api.errors import ApiError
from alertd.auth import ApiKey, presented_key
from alertd.live import Live

BEARER = {"WWW-Authenticate": "Bearer"}  # the challenge of every 401 (API keys, metrics tokens)


def admit(live: Live, x_api_key: str | None, authorization: str | None, path: str) -> ApiKey:
    """The key the headers present, if it may call `path` now; else the refusal, raised. No HTTP objects:
    the route guard and the ingest front (front.py) both admit with it."""
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
