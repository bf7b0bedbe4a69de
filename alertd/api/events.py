"""POST /v1/events: one envelope or a batch, acknowledged only once committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from alertd.api import serialize
from alertd.api.errors import ApiError, json_response
from alertd.api.state import API_KEY, RUNTIME
from alertd.ingest import Envelope, IngestError, may_nest_too_deep, parse_envelope
from alertd.model import Severity
from alertd.store import StoreUnavailable

RETRY_AFTER = {"Retry-After": "5"}


async def post_events(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if not runtime.accepting:
        raise ApiError(503, "shutting_down", "alertd is shutting down; retry shortly", headers=RETRY_AFTER)
    body = await request.read()
    data = parse_json(body)
    try:
        envelopes = parse_batch(data, runtime.config.server.max_batch, runtime.live.snapshot.default_severity,
                                check_depth=may_nest_too_deep(body))
        runtime.ingest.authorize(request[API_KEY], envelopes)
        accepted = await runtime.ingest.accept(envelopes, request[API_KEY].name)
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the store cannot commit right now; nothing was accepted",
                       headers=RETRY_AFTER) from None
    if isinstance(data, dict):
        return json_response(serialize.accepted(accepted[0]), status=200 if accepted[0].duplicate else 202)
    status = 200 if all(a.duplicate for a in accepted) else 202
    return json_response({"events": [serialize.accepted(a) for a in accepted]}, status=status)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty; send a JSON object or array", "body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:120]}", "body") from None


def parse_batch(data: Any, max_batch: int, default_severity: Callable[[str], Severity] | None = None,
                check_depth: bool = True) -> list[Envelope]:
    if isinstance(data, list):
        if not data:
            raise IngestError(400, "invalid_event", "an empty batch has nothing to accept", "body")
        if len(data) > max_batch:
            raise IngestError(413, "too_large", f"a batch holds at most {max_batch} events", "body")
        return [parse_envelope(item, f"[{i}].", default_severity, check_depth) for i, item in enumerate(data)]
    return [parse_envelope(data, "", default_severity, check_depth)]
