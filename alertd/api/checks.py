"""Checks and outcomes over HTTP. Producers ping and report; admins declare, pause and inspect."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from alertd.api.errors import ApiError, json_response
from alertd.api.events import parse_json
from alertd.api.manage import body_of, confirm_destructive
from alertd.api.state import API_KEY, RUNTIME
from alertd.changes import merge_patch
from alertd.checks import CheckDecl, PingKind
from alertd.config import describe_validation_error
from alertd.durations import iso, parse_duration, parse_timestamp
from alertd.model import Severity
from alertd.redact import redact
from alertd.scheduler import Check
from alertd.store.reads import recent_pings

MAX_PING_BODY = 10 * 1024
MAX_KEY = 200
CHECK_STATES = ("new", "up", "down", "running", "paused")
PING_KINDS: dict[str, PingKind] = {"ping": "success", "start": "start", "fail": "fail"}


def check_view(check: Check) -> dict[str, Any]:
    st = check.state
    return {"name": check.decl.name, "managed": check.managed, "config": check.decl.model_dump(exclude_none=True),
            "state": st.state, "last_ping_at": iso(st.last_ping_at), "last_start_at": iso(st.last_start_at),
            "next_deadline_at": iso(st.deadline_at), "runtime_deadline_at": iso(st.runtime_deadline_at),
            "fail_streak": st.fail_streak}


# ---- producers ----------------------------------------------------------------------------------

async def ping(request: web.Request) -> web.Response:
    """POST /v1/checks/{name}/{ping|start|fail|<exit status>}: 0 is success, anything else a failure."""
    runtime = request.app[RUNTIME]
    name, signal = request.match_info["name"], request.match_info["signal"]
    if not request[API_KEY].may_emit(name):
        raise ApiError(403, "forbidden", f"key {request[API_KEY].name!r} may not ping {name[:60]!r}")
    kind, exit_status = _signal(signal)
    body = await _ping_body(request, runtime)
    check = await runtime.scheduler.ping(name, kind, exit_status, body, request[API_KEY].name)
    return json_response({"check": name, "received": kind, "state": check.state.state,
                          "next_deadline_at": iso(check.state.deadline_at)}, status=202)


def _signal(signal: str) -> tuple[PingKind, int | None]:
    if signal in PING_KINDS:
        return PING_KINDS[signal], None
    if signal.isascii() and signal.isdigit() and len(signal) <= 3 and int(signal) <= 255:  # not "²" or "٣"
        status = int(signal)
        return ("success" if status == 0 else "fail"), status
    raise ApiError(404, "not_found", "use /ping, /start, /fail or /<exit status 0-255>")


async def _ping_body(request: web.Request, runtime: Any) -> str | None:
    raw = await request.read()
    if not raw:
        return None
    if len(raw) > MAX_PING_BODY:
        raise ApiError(413, "too_large", f"a ping body is at most {MAX_PING_BODY} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")  # a log tail, say: kept as text
    return orjson.dumps(redact(data, runtime.ingest.sensitive)).decode()


async def post_expectation(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = await body_of(request, frozenset({"key", "deadline", "within", "severity", "payload", "group"}))
    key = _key(body)
    deadline = _deadline(body, runtime.scheduler.clock.now())
    severity = _severity(body.get("severity", "error"))
    payload = _payload(body, runtime)
    group = body.get("group")
    if group is not None and (not isinstance(group, str) or not 1 <= len(group) <= MAX_KEY):
        raise ApiError(400, "invalid_body", f"group must be a string of 1 to {MAX_KEY} characters", "group")
    await runtime.scheduler.expect(key, deadline, severity, payload, group, request[API_KEY].name)
    return json_response({"key": key, "deadline_at": iso(deadline), "group": group, "state": "waiting"}, status=201)


async def post_outcome(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = await body_of(request, frozenset({"key", "success", "payload"}))
    key = _key(body)
    success = body.get("success")
    if not isinstance(success, bool):
        raise ApiError(400, "invalid_body", "success must be true or false", "success")
    payload = _payload(body, runtime)
    resolution = await runtime.scheduler.outcome(key, success, payload, request[API_KEY].name,
                                                 request[API_KEY].is_admin)
    return json_response({"key": key, "state": "met" if success else "failed", "group": resolution.group,
                          "group_fail_streak": resolution.streak}, status=202)


def _key(body: dict[str, Any]) -> str:
    key = body.get("key")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        raise ApiError(400, "invalid_body", f"key must be a string of 1 to {MAX_KEY} characters", "key")
    return key


def _deadline(body: dict[str, Any], now: float) -> float:
    if ("deadline" in body) == ("within" in body):
        raise ApiError(400, "invalid_body", "give exactly one of deadline (ISO-8601) or within (e.g. 30m)", "deadline")
    try:
        if "within" in body:
            seconds = parse_duration(body["within"])
            if seconds > 90 * 86400:
                raise ValueError("within is at most 90d")
            return now + seconds
        value = body["deadline"]
        if not isinstance(value, str):
            raise ValueError("deadline must be an ISO-8601 time")
        return parse_timestamp(value)
    except ValueError as exc:
        field = "within" if "within" in body else "deadline"
        raise ApiError(400, "invalid_body", str(exc), field) from None


def _severity(value: Any) -> Severity:
    if not isinstance(value, str):
        raise ApiError(400, "invalid_body", "severity must be a string: info, warning, error or critical", "severity")
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise ApiError(400, "invalid_body", str(exc), "severity") from None


def _payload(body: dict[str, Any], runtime: Any) -> dict[str, Any]:
    payload = body.get("payload", {})
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_body", "payload must be a JSON object", "payload")
    if len(orjson.dumps(payload)) > MAX_PING_BODY:
        raise ApiError(413, "too_large", f"payload is at most {MAX_PING_BODY} bytes", "payload")
    return dict(redact(payload, runtime.ingest.sensitive))


# ---- admins -------------------------------------------------------------------------------------

async def list_checks(request: web.Request) -> web.Response:
    checks = request.app[RUNTIME].scheduler.checks
    state = request.rel_url.query.get("state")
    if state is not None and state not in CHECK_STATES:
        raise ApiError(400, "invalid_parameter", "state must be one of " + ", ".join(CHECK_STATES), "state")
    views = [check_view(c) for c in checks.values() if state is None or c.state.state == state]
    return json_response({"checks": sorted(views, key=lambda v: v["name"])})


async def get_check(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    check = runtime.scheduler.checks.get(request.match_info["name"])
    if check is None:
        raise ApiError(404, "not_found", "no such check")
    pings = await recent_pings(runtime.store.read, check.decl.name, 20)
    return json_response({**check_view(check), "pings": [{**p, "received_at": iso(p["received_at"])}
                                                         for p in pings]})


async def create_check(request: web.Request) -> web.Response:
    return await _put(request, await body_of(request), create=True)


async def patch_check(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    name = request.match_info["name"]
    check = runtime.scheduler.checks.get(name)
    if check is None:
        raise ApiError(404, "not_found", f"no check named {name[:60]!r}")
    merged = merge_patch(check.decl.model_dump(exclude_none=True), await body_of(request))
    if merged.get("name") != name:
        raise ApiError(400, "invalid_body", "a check's name cannot change", "name")
    return await _put(request, merged, create=False)


async def _put(request: web.Request, raw: dict[str, Any], *, create: bool) -> web.Response:
    try:
        decl = CheckDecl.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(400, "invalid_check", describe_validation_error(exc)) from None
    check = await request.app[RUNTIME].scheduler.put_check(decl, create=create)
    return json_response(check_view(check), status=201 if create else 200)


async def delete_check(request: web.Request) -> web.Response:
    confirm_destructive(request)
    await request.app[RUNTIME].scheduler.delete_check(request.match_info["name"])
    return json_response({"deleted": request.match_info["name"]})


async def pause_check(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


async def resume_check(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    if request.can_read_body:
        parse_json(await request.read())  # tolerated, ignored; but it must be JSON if sent
    check = await request.app[RUNTIME].scheduler.set_paused(request.match_info["name"], paused)
    return json_response(check_view(check))
