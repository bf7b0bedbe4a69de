"""POST /v1/events: one envelope or a batch, acknowledged only once committed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from alertd.api import serialize
from alertd.api.errors import ApiError, json_response
from alertd.api.state import API_KEY, RUNTIME, Runtime
from alertd.auth import ApiKey
from alertd.ingest import Envelope, IngestError, may_nest_too_deep, parse_envelope
from alertd.model import Severity
from alertd.store import StoreUnavailable

RETRY_AFTER = {"Retry-After": "5"}


async def post_events(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    refuse_when_stopping(runtime)
    status, answer = await accept_body(runtime, request[API_KEY], await request.read())
    return json_response(answer, status=status)


def refuse_when_stopping(runtime: Runtime) -> None:
    if not runtime.accepting:
        raise ApiError(503, "shutting_down", "alertd is shutting down; retry shortly", headers=RETRY_AFTER)


async def accept_body(runtime: Runtime, key: ApiKey, body: bytes) -> tuple[int, Any]:
    """A producer's body → (status, JSON answer), once every event in it is committed; a refusal is raised.
    No HTTP objects: the aiohttp route and the ingest front (front.py) both answer with it; each refuses
    first while alertd is stopping (refuse_when_stopping), the route before it reads the body."""
    data = parse_json(body)
    try:
        envelopes = parse_batch(data, runtime.config.server.max_batch, runtime.live.snapshot.default_severity,
                                check_depth=may_nest_too_deep(body))
        runtime.ingest.authorize(key, envelopes)
        accepted = await runtime.ingest.accept(envelopes, key.name)
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the store cannot commit right now; nothing was accepted",
                       headers=RETRY_AFTER) from None
    if isinstance(data, dict):
        return 200 if accepted[0].duplicate else 202, serialize.accepted(accepted[0])
    status = 200 if all(a.duplicate for a in accepted) else 202
    return status, {"events": [serialize.accepted(a) for a in accepted]}


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty; send a JSON object or array", "body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:120]}", "body") from None
    if _holds_float_past_int64(data):
        _refuse_inexact_integers(body)
    return data


# orjson reads an integer literal past 64 bits as the nearest float, so a producer's exact id would be stored
# changed. Such a float is the only trace it leaves, and a cheap one to look for: only then is the body read
# again, exactly, to tell an integer that does not fit from a float literal that merely is large.
INT_RANGE = (-(2**63), 2**64 - 1)
# a float this large may be an integer that did not fit (-2^63 - 1 rounds to exactly -2^63 as a float)
_FLOAT_SURE_EXACT = (-(2.0**63), 2.0**63)


def _holds_float_past_int64(data: Any) -> bool:
    stack = [data]
    while stack:
        item = stack.pop()
        for value in item.values() if isinstance(item, dict) else item if isinstance(item, list) else ():
            kind = type(value)
            if kind is float:
                if not _FLOAT_SURE_EXACT[0] < value < _FLOAT_SURE_EXACT[1]:
                    return True
            elif kind is dict or kind is list:
                stack.append(value)
    return False


def _exact_integer(text: str) -> int:
    value = int(text)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise ApiError(400, "invalid_json", f"the integer {text[:24]}{'…' if len(text) > 24 else ''} does not fit in "
                       "64 bits (-2^63 to 2^64-1) and would be stored changed; send it as a string", "body")
    return value


def _refuse_inexact_integers(body: bytes) -> None:
    try:
        json.loads(body, parse_int=_exact_integer)
    except RecursionError:  # orjson took it; the stdlib parser recurses: deep nesting is refused later anyway
        return


def parse_batch(data: Any, max_batch: int, default_severity: Callable[[str], Severity] | None = None,
                check_depth: bool = True) -> list[Envelope]:
    if isinstance(data, list):
        if not data:
            raise IngestError(400, "invalid_event", "an empty batch has nothing to accept", "body")
        if len(data) > max_batch:
            raise IngestError(413, "too_large", f"a batch holds at most {max_batch} events", "body")
        return [parse_envelope(item, f"[{i}].", default_severity, check_depth) for i, item in enumerate(data)]
    return [parse_envelope(data, "", default_severity, check_depth)]
