"""POST /v1/hooks/alertmanager and POST /v1/hooks/{name}: other producers' payloads, mapped to events,
then accepted exactly like a /v1/events batch (same keys, limits, errors, 202/200)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from alertd.adapters import alertmanager
from alertd.adapters.hooks import DefaultSeverity
from alertd.api import serialize
from alertd.api.errors import ApiError, json_response
from alertd.api.events import RETRY_AFTER, parse_json
from alertd.api.state import API_KEY, RUNTIME
from alertd.model import Envelope
from alertd.store import StoreUnavailable

Mapper = Callable[[Any, int, DefaultSeverity], list[Envelope]]


async def post_alertmanager(request: web.Request) -> web.Response:
    # Every alert gets a severity (unknown labels → warning), so the catalog default never applies.
    return await _ingest(request, lambda data, max_batch, _default: alertmanager.to_envelopes(data, max_batch))


async def post_hook(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    hooks = request.app[RUNTIME].hooks
    hook = hooks.get(name)
    if hook is None:
        raise ApiError(404, "not_found", f"no hook named {name[:64]!r}: declare it as [[hooks]] in the config")
    return await _ingest(request, hook.to_envelopes)


async def _ingest(request: web.Request, to_envelopes: Mapper) -> web.Response:
    runtime = request.app[RUNTIME]
    if not runtime.accepting:
        raise ApiError(503, "shutting_down", "alertd is shutting down; retry shortly", headers=RETRY_AFTER)
    data = parse_json(await request.read())
    key = request[API_KEY]
    try:
        envelopes = to_envelopes(data, runtime.config.server.max_batch, runtime.live.snapshot.default_severity)
        runtime.ingest.authorize(key, envelopes)
        accepted = await runtime.ingest.accept(envelopes, key.name)
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the store cannot commit right now; nothing was accepted",
                       headers=RETRY_AFTER) from None
    status = 200 if all(a.duplicate for a in accepted) else 202
    return json_response({"events": [serialize.accepted(a) for a in accepted]}, status=status)
