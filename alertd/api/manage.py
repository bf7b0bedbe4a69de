"""Admin API for what operators change: channels, routes, keys, dead letters, the catalog, reloads."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from alertd.api import params, serialize
from alertd.api.errors import ApiError, json_response
from alertd.api.events import parse_json
from alertd.api.state import API_KEY, RUNTIME, Runtime
from alertd.changes import Changes
from alertd.channels import ChannelConfig, PermanentError, RetryableError
from alertd.config import ADMIN_KEY_NAME, ConfigError, load_config
from alertd.durations import iso
from alertd.ingest import parse_envelope
from alertd.model import DeliveryState, Event, Severity, new_event_id
from alertd.netguard import redact_url
from alertd.render import render
from alertd.routing import explain_route
from alertd.secrets import SECRET_REFS, mask
from alertd.store import DeliveryFilter, silence_ops
from alertd.store import admin_ops as ops
from alertd.store.reads import api_keys, audit_rows, event_counts_since, incident, incidents

# [log] too: structlog loggers keep the configuration of their first use, so a new level would apply to some
# modules and not others
RESTART_SECTIONS = ("server", "storage", "net", "log")
MAX_BULK = 10_000


def changes(request: web.Request) -> Changes:
    return request.app[RUNTIME].changes


def confirm_destructive(request: web.Request) -> None:
    if request.headers.get("X-Confirm-Destructive", "").lower() != "true":
        raise ApiError(400, "confirmation_required", "this call destroys or changes many things: send "
                       "X-Confirm-Destructive: true", "X-Confirm-Destructive")


async def body_of(request: web.Request, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    return params.body_object(parse_json(await request.read()), allowed)


# ---- channels -----------------------------------------------------------------------------------

def channel_view(runtime: Runtime, name: str) -> dict[str, Any]:
    snapshot = runtime.live.snapshot
    config = snapshot.channels[name]
    shown: dict[str, Any] = {}
    for key, value in snapshot.channel_raw[name].items():
        shown[key] = _shown(config, key, value)
    return {"name": name, "type": config.type, "managed": snapshot.channel_managed[name], "config": shown}


def _shown(config: ChannelConfig, key: str, value: Any) -> Any:
    """Secrets are write-only: an inline one is masked; a reference (env:, file:, cred:) is not a secret."""
    current = getattr(config, key, None)
    if isinstance(current, dict) and isinstance(value, dict):  # e.g. webhook headers: names shown, values masked
        return {k: _shown_one(v) if isinstance(current.get(k), SecretStr) else v for k, v in value.items()}
    secret = isinstance(current, SecretStr) or (isinstance(current, list) and current
                                               and isinstance(current[0], SecretStr))
    if secret:
        values = value if isinstance(value, list) else [value]
        masked = [_shown_one(v) for v in values]
        return masked if isinstance(value, list) else masked[0]
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return redact_url(value)  # any URL-valued key (`url`, `api_base`): no userinfo, no query shown
    return value


def _shown_one(value: Any) -> Any:
    return value if isinstance(value, str) and value.startswith(SECRET_REFS) else mask(str(value))


async def list_channels(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    return json_response({"channels": [channel_view(runtime, n) for n in runtime.live.snapshot.channels]})


def _existing_channel(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in request.app[RUNTIME].live.snapshot.channels:
        raise ApiError(404, "not_found", f"no channel named {name[:60]!r}")
    return name


async def get_channel(request: web.Request) -> web.Response:
    return json_response(channel_view(request.app[RUNTIME], _existing_channel(request)))


async def create_channel(request: web.Request) -> web.Response:
    raw = await body_of(request)
    await changes(request).create_channel(raw)
    return json_response(channel_view(request.app[RUNTIME], str(raw["name"])), status=201)


async def patch_channel(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await changes(request).patch_channel(name, await body_of(request))
    return json_response(channel_view(request.app[RUNTIME], name))


async def delete_channel(request: web.Request) -> web.Response:
    confirm_destructive(request)
    await changes(request).delete_channel(request.match_info["name"])
    return json_response({"deleted": request.match_info["name"]})


async def test_channel(request: web.Request) -> web.Response:
    """Sends a synthetic event through one channel now; nothing is stored."""
    runtime = request.app[RUNTIME]
    name = _existing_channel(request)
    channel = runtime.live.channels[name]
    event = Event(new_event_id(), "alertd.test", Severity.INFO,
                  {"summary": f"Test message from alertd to {name}", "channel": name}, time.time(), "admin")
    message = render(event, 0, 1, runtime.config.server.public_url, channel.template)
    started = time.monotonic()
    result: dict[str, Any] = {"channel": name, "ok": True, "status": None, "error": None, "retryable": None}
    try:
        outcome = await channel.send(message)
        result["status"] = outcome.status
    except (RetryableError, PermanentError) as exc:
        result.update(ok=False, status=exc.status, error=str(exc), retryable=isinstance(exc, RetryableError))
    except Exception as exc:
        result.update(ok=False, error=f"internal error in channel: {type(exc).__name__}", retryable=True)
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return json_response(result)


# ---- routes -------------------------------------------------------------------------------------

def route_view(runtime: Runtime, name: str) -> dict[str, Any]:
    snapshot = runtime.live.snapshot
    decl = next(d for d in snapshot.route_decls if d.name == name)
    return {**decl.model_dump(exclude_none=True), "managed": snapshot.route_managed[name]}


async def list_routes(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    ordered = [r.name for r in runtime.live.snapshot.routes.routes]
    return json_response({"routes": [route_view(runtime, n) for n in ordered]})


async def get_route(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    name = request.match_info["name"]
    if name not in runtime.live.snapshot.route_managed:
        raise ApiError(404, "not_found", f"no route named {name[:60]!r}")
    return json_response(route_view(runtime, name))


async def create_route(request: web.Request) -> web.Response:
    raw = await body_of(request)
    await changes(request).create_route(raw)
    return json_response(route_view(request.app[RUNTIME], str(raw["name"])), status=201)


async def patch_route(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await changes(request).patch_route(name, await body_of(request))
    return json_response(route_view(request.app[RUNTIME], name))


async def delete_route(request: web.Request) -> web.Response:
    confirm_destructive(request)
    await changes(request).delete_route(request.match_info["name"])
    return json_response({"deleted": request.match_info["name"]})


async def test_routes(request: web.Request) -> web.Response:
    """Given an envelope: which routes take it, which channels would receive it, and why not the rest."""
    runtime = request.app[RUNTIME]
    snapshot = runtime.live.snapshot
    envelope = parse_envelope(await body_of(request), "", snapshot.default_severity)
    target = envelope.as_match_target()
    verdicts = [explain_route(r, envelope.event, envelope.severity, target) for r in snapshot.routes.routes]
    return json_response({
        "event": envelope.event, "severity": envelope.severity.label,
        "channels": list(snapshot.routes.channels(envelope)),
        "routes": [{"name": v.route.name, "managed": snapshot.route_managed.get(v.route.name), "matched": v.matched,
                    "channels": list(v.route.channels), "reasons": list(v.reasons),
                    "conditions": [{"index": c.index, "field": c.condition.field, "op": c.condition.op,
                                    "passed": c.passed, "actual": _jsonable(c.actual), "reason": c.reason}
                                   for c in v.conditions]}
                   for v in verdicts],
    })


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


# ---- keys ---------------------------------------------------------------------------------------

async def list_keys(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    snapshot = runtime.live.snapshot
    rows = []
    if snapshot.config.settings.admin_key is not None:
        last_used = runtime.live.key_last_used.get(ADMIN_KEY_NAME)
        rows.append({"name": ADMIN_KEY_NAME, "managed": "config", "prefix": None, "role": "admin", "events": ["*"],
                     "rate": None, "created_at": None, "last_used_at": iso(last_used),
                     "revoked_at": None, "note": "the bootstrap key from admin_key / ALERTD_ADMIN_KEY"})
    for key in snapshot.config.settings.keys:
        rows.append({"name": key.name, "managed": "config", "prefix": None, "role": key.role,
                     "events": key.events, "rate": key.rate, "created_at": None,
                     "last_used_at": iso(runtime.live.key_last_used.get(key.name)), "revoked_at": None})
    for row in await api_keys(runtime.store.read):
        last = max(row.last_used_at or 0, runtime.live.key_last_used.get(row.name, 0)) or None
        rows.append({"name": row.name, "managed": "api", "prefix": row.prefix, "role": row.role,
                     "events": list(row.events), "rate": row.rate, "created_at": iso(row.created_at),
                     "last_used_at": iso(last),
                     "revoked_at": iso(row.revoked_at)})
    return json_response({"keys": rows})


async def create_key(request: web.Request) -> web.Response:
    body = await body_of(request, frozenset({"name", "role", "events", "rate"}))
    name, role, events = body.get("name"), body.get("role", "producer"), body.get("events", ["*"])
    rate = body.get("rate")
    if rate is not None and not isinstance(rate, str):
        raise ApiError(400, "invalid_body", "rate must be a string like '100/s'", "rate")
    if not isinstance(name, str):
        raise ApiError(400, "invalid_body", "name must be a string", "name")
    if not isinstance(role, str):
        raise ApiError(400, "invalid_body", "role must be a string", "role")
    if not isinstance(events, list):
        raise ApiError(400, "invalid_body", "events must be a list of event patterns", "events")
    created = await changes(request).create_key(name, role, events, rate)
    row = created.row
    return json_response({"name": row.name, "key": created.plaintext, "prefix": row.prefix, "role": row.role,
                          "events": list(row.events), "rate": row.rate, "created_at": iso(row.created_at),
                          "note": "the key is shown only in this response; store it now"}, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    confirm_destructive(request)
    await changes(request).revoke_key(request.match_info["name"])
    return json_response({"revoked": request.match_info["name"]})


# ---- dead letters -------------------------------------------------------------------------------

async def list_dead(request: web.Request) -> web.Response:
    q = request.rel_url.query
    f = DeliveryFilter(state=DeliveryState.DEAD, channel=q.get("channel"), pattern=params.pattern(q),
                       since=params.instant(q, "since"), until=params.instant(q, "until"),
                       cursor=params.int_cursor(q), limit=params.limit(q))
    rows = await request.app[RUNTIME].store.read.list_deliveries(f)
    next_cursor = str(rows[-1][0].id) if len(rows) == f.limit else None
    return json_response({"deliveries": [serialize.delivery(d, n) for d, n in rows], "next_cursor": next_cursor})


async def retry_dead(request: web.Request) -> web.Response:
    """Dead letters back into the queue in place: `{"ids": [...]}` or `{"filter": {...}}`."""
    runtime = request.app[RUNTIME]
    body = await body_of(request, frozenset({"ids", "filter"}))
    if "ids" in body and "filter" in body:
        raise ApiError(400, "invalid_body", "give ids or filter, not both", "filter")
    ids, more = await _dead_ids(runtime, body)
    if len(ids) > 1:
        confirm_destructive(request)
    reopened = await runtime.store.writer.submit(lambda c: ops.reopen_dead(c, ids, time.time()))
    await runtime.dispatcher.take(reopened)
    return json_response({"retried": len(reopened), "ids": reopened, "more": more}, status=202)


async def _dead_ids(runtime: Runtime, body: dict[str, Any]) -> tuple[list[int], bool]:
    """The ids to retry, and whether a filter matched more than one call retries (MAX_BULK)."""
    if "ids" in body:
        return params.delivery_ids(body, 500), False
    spec = body.get("filter")
    if not isinstance(spec, dict):
        raise ApiError(400, "invalid_body", 'send {"ids": [...]} or {"filter": {"event", "channel", "since"}}')
    unknown = set(spec) - {"event", "channel", "since", "until"}
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown filter key {sorted(unknown)[0][:40]!r}", "filter")
    query = {k: str(v) for k, v in spec.items()}
    found: list[int] = []
    cursor = None
    while len(found) <= MAX_BULK:  # one page past the cap tells whether more matched
        rows = await runtime.store.read.list_deliveries(DeliveryFilter(
            state=DeliveryState.DEAD, channel=query.get("channel"), pattern=params.pattern(query),
            since=params.instant(query, "since"), until=params.instant(query, "until"), cursor=cursor, limit=500))
        found.extend(d.id for d, _ in rows)
        if len(rows) < 500:
            break
        cursor = rows[-1][0].id
    return found[:MAX_BULK], len(found) > MAX_BULK


# ---- catalog and reload -------------------------------------------------------------------------

async def catalog(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    counts = await event_counts_since(runtime.store.read, time.time() - 86400)
    known = runtime.live.snapshot.catalog
    return json_response({
        "events": [{"name": e.name, "default_severity": e.default_severity, "description": e.description,
                    "seen_24h": counts.get(e.name, 0)} for e in known.values()],
        "uncatalogued": [{"name": n, "seen_24h": c} for n, c in sorted(counts.items()) if n not in known],
    })


async def reload_config(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        await reload_from_file(runtime)
    except ConfigError as exc:
        raise ApiError(400, "invalid_config", f"kept the running config: {exc}") from None
    snapshot = runtime.live.snapshot
    return json_response({"reloaded": True, "channels": len(snapshot.channels),
                          "routes": len(snapshot.route_decls), "keys": len(snapshot.keyring)})


async def reload_from_file(runtime: Runtime) -> None:
    """Re-reads the TOML. An invalid file changes nothing (the ConfigError says why)."""
    config = load_config(runtime.config.source)
    running = runtime.config.settings
    for section in RESTART_SECTIONS:
        # these are wired into long-lived parts at start (the listening socket, the store, the outbound
        # policy in the resolver, the connect check and the URL cache): applying them now would be a lie
        if getattr(config.settings, section) != getattr(running, section):
            raise ConfigError(f"[{section}] changed: that takes a restart; nothing was reloaded")
    if config.settings.metrics.enabled != running.metrics.enabled:
        raise ConfigError("[metrics] enabled changed: that takes a restart; nothing was reloaded")
    await runtime.changes.reload(config)
    runtime.apply_tunables(config.settings)
    await runtime.scheduler.sync_config(config.settings.checks)
    await silence_ops.apply_config(runtime.silences, runtime.store, config.settings.silences)


# ---- incidents and audit ------------------------------------------------------------------------

def incident_view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "severity": Severity(row["severity"]).label, "opened_at": iso(row["opened_at"]),
            "next_step_at": iso(row["next_step_at"]), "acked_at": iso(row["acked_at"])}


async def list_incidents(request: web.Request) -> web.Response:
    state = request.rel_url.query.get("state")
    if state is not None and state not in ("open", "acked"):
        raise ApiError(400, "invalid_parameter", "state must be open or acked", "state")
    rows = await incidents(request.app[RUNTIME].store.read, state, params.limit(request.rel_url.query, 100))
    return json_response({"incidents": [incident_view(r) for r in rows]})


async def ack_incident(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    incident_id = params.row_id(raw)
    if incident_id is None:
        raise ApiError(404, "not_found", "no such incident")
    runtime = request.app[RUNTIME]
    result = await runtime.incidents.ack(incident_id, f"key:{request[API_KEY].name}")
    if result.outcome == "missing":
        raise ApiError(404, "not_found", "no such incident")
    if result.outcome != "acked":
        raise ApiError(409, "conflict", f"incident {raw} is already {result.state}")
    found = await incident(runtime.store.read, int(raw))
    assert found is not None
    return json_response(incident_view(found))


async def list_audit(request: web.Request) -> web.Response:
    q = request.rel_url.query
    limit = params.limit(q, 100)
    rows = await audit_rows(request.app[RUNTIME].store.read, params.instant(q, "since"), params.int_cursor(q), limit)
    next_cursor = str(rows[-1]["id"]) if len(rows) == limit else None
    return json_response({"audit": [{**r, "at": iso(r["at"])} for r in rows], "next_cursor": next_cursor})
