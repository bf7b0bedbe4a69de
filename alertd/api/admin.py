"""The admin read plane and replay: /v1/admin/events, /v1/admin/deliveries."""

from __future__ import annotations

from aiohttp import web

from alertd.api import params, serialize
from alertd.api.errors import ApiError, json_response
from alertd.api.events import parse_json
from alertd.api.state import RUNTIME
from alertd.store import DeliveryFilter, EventFilter

MAX_REPLAY_IDS = 500


async def list_events(request: web.Request) -> web.Response:
    q = request.rel_url.query
    f = EventFilter(pattern=params.pattern(q), severity=params.severity(q, "severity"),
                    min_severity=params.severity(q, "min_severity"), since=params.instant(q, "since"),
                    until=params.instant(q, "until"), cursor=params.event_cursor(q), limit=params.limit(q))
    rows = await request.app[RUNTIME].store.read.list_events(f)
    next_cursor = rows[-1][0].id if len(rows) == f.limit else None
    return json_response({"events": [serialize.event(e, n) for e, n in rows], "next_cursor": next_cursor})


async def get_event(request: web.Request) -> web.Response:
    store = request.app[RUNTIME].store
    event = await store.read.event(request.match_info["id"])
    if event is None:
        raise ApiError(404, "not_found", "no such event")
    deliveries = await store.read.deliveries_for_event(event.id)
    attempts = await store.read.attempts_for([d.id for d in deliveries])
    body = serialize.event(event, len(deliveries))
    body["deliveries"] = [
        {**serialize.delivery(d), "attempts_list": [serialize.attempt(a) for a in attempts[d.id]]}
        for d in deliveries
    ]
    return json_response(body)


async def list_deliveries(request: web.Request) -> web.Response:
    q = request.rel_url.query
    f = DeliveryFilter(state=params.state(q), channel=q.get("channel"), pattern=params.pattern(q),
                       since=params.instant(q, "since"), until=params.instant(q, "until"),
                       cursor=params.int_cursor(q), limit=params.limit(q))
    rows = await request.app[RUNTIME].store.read.list_deliveries(f)
    next_cursor = str(rows[-1][0].id) if len(rows) == f.limit else None
    return json_response({"deliveries": [serialize.delivery(d, name) for d, name in rows],
                          "next_cursor": next_cursor})


async def replay_event(request: web.Request) -> web.Response:
    body = params.body_object(parse_json(await request.read()) if request.can_read_body else None,
                              frozenset({"channels"}))
    channels = body.get("channels")
    if channels is not None and (not isinstance(channels, list) or not channels or len(channels) > 100
                                 or not all(isinstance(c, str) for c in channels)):
        raise ApiError(400, "invalid_body", "channels must be a non-empty list of channel names", "channels")
    replayed = await request.app[RUNTIME].replayer.replay_event(request.match_info["id"], channels)
    return json_response({"event_id": replayed.event_id,
                          "deliveries": [serialize.delivery(d) for d in replayed.deliveries]}, status=202)


async def replay_deliveries(request: web.Request) -> web.Response:
    body = params.body_object(parse_json(await request.read()), frozenset({"ids"}))
    ids = params.delivery_ids(body, MAX_REPLAY_IDS)
    created = await request.app[RUNTIME].replayer.replay_deliveries(ids)
    return json_response({"deliveries": [serialize.delivery(d) for d in created]}, status=202)
