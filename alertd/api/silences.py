"""Admin API for silences: list, create, expire. The silences in force live in `Runtime.silences`
(a SilenceBook) and are reloaded from the store after every change."""

from __future__ import annotations

import time
from typing import Any, get_args

from aiohttp import web
from pydantic import ValidationError

from alertd.api import params
from alertd.api.errors import ApiError, json_response
from alertd.api.manage import body_of, confirm_destructive
from alertd.api.state import API_KEY, RUNTIME
from alertd.config import describe_validation_error
from alertd.durations import iso
from alertd.silences import Silence, SilenceDecl
from alertd.store import silence_ops
from alertd.store.silence_ops import ListState

MAX_IN_FORCE = 500  # each silence in force is one more test per event
STATES: dict[str, ListState] = {s: s for s in get_args(ListState)}


def silence_view(s: Silence, now: float) -> dict[str, Any]:
    return {"id": s.id, "state": s.state(now), "managed": s.managed, **s.matchers.to_config(),
            "starts_at": iso(s.starts_at), "ends_at": iso(s.ends_at), "creator": s.creator, "comment": s.comment,
            "created_at": iso(s.created_at), "expired_at": iso(s.expired_at)}


async def list_silences(request: web.Request) -> web.Response:
    """`?state=active|pending|expired|all`; by default the ones in force (active and pending)."""
    q = request.rel_url.query
    state = STATES.get(q.get("state", "current"))
    if state is None:
        raise params.bad("state", "state must be active, pending, expired or all (default: active and pending)")
    now = time.time()
    found = await silence_ops.list_silences(request.app[RUNTIME].store.read, state, now,
                                            params.limit(q, default=params.MAX_LIMIT))
    return json_response({"silences": [silence_view(s, now) for s in found]})


async def get_silence(request: web.Request) -> web.Response:
    silence = await _existing(request)
    return json_response(silence_view(silence, time.time()))


async def create_silence(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = await body_of(request)
    if body.get("creator") is None:
        body["creator"] = request[API_KEY].name
    try:
        decl = SilenceDecl.model_validate(body)
    except ValidationError as exc:
        raise ApiError(400, "invalid_silence", describe_validation_error(exc), _field(exc)) from None
    now = time.time()
    if decl.window(now)[1] <= now:
        raise ApiError(400, "invalid_silence", "ends_at: the silence would already be over", "ends_at")
    if len(runtime.silences.current()) >= MAX_IN_FORCE:
        raise ApiError(409, "conflict", f"{MAX_IN_FORCE} silences are in force already; expire some first")
    silence_id = await runtime.store.writer.submit(lambda c: silence_ops.insert_silence(c, decl, "api", now))
    await silence_ops.refresh(runtime.silences, runtime.store.read)
    created = await silence_ops.get_silence(runtime.store.read, silence_id)
    assert created is not None
    return json_response(silence_view(created, time.time()), status=201)


async def expire_silence(request: web.Request) -> web.Response:
    """Ends a silence now; the row stays (with expired_at) for the history it explains."""
    confirm_destructive(request)
    runtime = request.app[RUNTIME]
    silence = await _existing(request)
    if silence.managed == "config":
        raise ApiError(409, "managed_by_config", f"silence {silence.id} is declared in the config file; "
                       "remove it there and reload")
    now = time.time()
    await runtime.store.writer.submit(lambda c: silence_ops.expire_silence(c, silence.id, now))
    await silence_ops.refresh(runtime.silences, runtime.store.read)
    expired = await silence_ops.get_silence(runtime.store.read, silence.id)
    assert expired is not None
    return json_response(silence_view(expired, time.time()))


async def _existing(request: web.Request) -> Silence:
    raw = request.match_info["id"]
    silence = None
    if (silence_id := params.row_id(raw)) is not None:
        silence = await silence_ops.get_silence(request.app[RUNTIME].store.read, silence_id)
    if silence is None:
        raise ApiError(404, "not_found", f"no silence {raw[:40]!r}")
    return silence


def _field(exc: ValidationError) -> str:
    loc = exc.errors(include_url=False)[0]["loc"]
    return ".".join(str(part) for part in loc) or "body"
