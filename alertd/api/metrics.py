"""GET /metrics in Prometheus' text format. It is outside /v1/, so it decides access itself: an admin key,
the `[metrics] token` (what a Prometheus scrape config holds), or anyone when `[metrics] public = true`."""

from __future__ import annotations

import hashlib
import hmac
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from alertd.api.auth import BEARER
from alertd.api.errors import error_response
from alertd.api.state import RUNTIME, Runtime
from alertd.auth import presented_key
from alertd.metrics import Metrics

# The classic text format every Prometheus reads (prometheus-client ≥ 0.22 names it CONTENT_TYPE_PLAIN_0_0_4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def serve(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    metrics = runtime.metrics
    if not isinstance(metrics, Metrics):
        return error_response(404, "not_found", "metrics are off ([metrics] enabled = false)")
    refused = _refusal(request, runtime)
    if refused is not None:
        return refused
    try:
        due: int | None = (await runtime.store.read.open_counts(time.time()))["due"]
    except Exception:  # a scrape still answers when the store cannot be read: the gauge is left out
        due = None
    return web.Response(body=metrics.render(due_backlog=due), headers={"Content-Type": CONTENT_TYPE})


def _refusal(request: web.Request, runtime: Runtime) -> web.Response | None:
    settings = runtime.live.snapshot.config.settings.metrics  # the config in force: a reload can rotate the token
    if settings.public:
        return None
    presented = presented_key(request.headers.get("x-api-key"), request.headers.get("Authorization"))
    if presented is None:
        return error_response(401, "unauthorized", "metrics need an admin key or the metrics token: send "
                              "x-api-key or Authorization: Bearer", headers=BEARER)
    if not _encodable(presented):  # header bytes that are not UTF-8 reach us as surrogates: no key of ours
        return error_response(401, "unauthorized", "unknown or revoked API key or metrics token", headers=BEARER)
    if settings.token is not None and _same(presented, settings.token.get_secret_value()):
        return None
    key = runtime.live.lookup_key(presented)
    if key is None:
        return error_response(401, "unauthorized", "unknown or revoked API key or metrics token", headers=BEARER)
    if not key.is_admin:
        return error_response(403, "forbidden", "metrics need an admin key or the metrics token")
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _same(presented: str, token: str) -> bool:
    # Digests have one length, so the comparison's time says nothing about the token, not even its length.
    return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), hashlib.sha256(token.encode()).digest())


def timed_ingest(handler: Handler) -> Handler:
    """Wraps an ingest handler to observe its latency (parse, commit wait, answer; errors included)."""

    async def timed(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            request.app[RUNTIME].metrics.ingest_finished(time.perf_counter() - started)

    return timed
