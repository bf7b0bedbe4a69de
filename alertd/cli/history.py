"""History through the admin API: events, deliveries, dead letters, replay."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from rich.console import Console
from rich.progress import Progress

from alertd.cli.output import CliError, add_remote_args, emit_json, run_async, segment, subparser, table, verbs
from alertd.client import AdminClient, ClientError
from alertd.durations import parse_instant

CHUNK = 100
BULK_LIMIT = 10_000
BULK_STATE = "dead"


def register(sub: Any) -> None:
    events = verbs(subparser(sub, "events", "list and show stored events"))
    ev_list = subparser(events, "list", "recent events, newest first",
                        "  alertd events list --event 'pr.*' --since 1h\n"
                        "  alertd events list --severity critical --json")
    add_remote_args(ev_list)
    ev_list.add_argument("--event", dest="pattern", help="event name, 'prefix.*' or '*'")
    ev_list.add_argument("--severity", help="exactly this severity")
    ev_list.add_argument("--since", help="a duration ago (1h, 7d) or an ISO-8601 time")
    ev_list.add_argument("--until")
    ev_list.add_argument("--limit", type=int, default=50)
    ev_list.set_defaults(run=cmd_events_list)
    ev_show = subparser(events, "show", "one event with its deliveries and every attempt",
                        "  alertd events show evt_01J…")
    add_remote_args(ev_show)
    ev_show.add_argument("event_id")
    ev_show.set_defaults(run=cmd_events_show)

    deliveries = verbs(subparser(sub, "deliveries", "list deliveries"))
    dl_list = subparser(deliveries, "list", "deliveries, newest first",
                        "  alertd deliveries list --state retrying --channel kosh")
    add_remote_args(dl_list)
    _delivery_filters(dl_list)
    dl_list.add_argument("--state", help="pending, retrying, delivered, dead or skipped")
    dl_list.set_defaults(run=cmd_deliveries_list)

    dlq = verbs(subparser(sub, "dlq", "dead letters: deliveries that gave up"))
    dlq_list = subparser(dlq, "list", "dead deliveries, newest first", "  alertd dlq list --channel kosh")
    add_remote_args(dlq_list)
    _delivery_filters(dlq_list)
    dlq_list.set_defaults(run=cmd_dlq_list)
    dlq_retry = subparser(dlq, "retry", "put dead deliveries back in the queue (same delivery, fresh attempts)",
                          "  alertd dlq retry 4411\n  alertd dlq retry --channel kosh --since 1h --yes")
    add_remote_args(dlq_retry)
    dlq_retry.add_argument("ids", nargs="*", type=int, help="delivery ids")
    _delivery_filters(dlq_retry)
    # the shared filters default --limit to 50, a page for a listing; a retry by filter takes every match
    # unless told otherwise, and None lets cmd_dlq_retry tell a --limit given with ids from the default
    dlq_retry.set_defaults(limit=None)
    dlq_retry.description = (f"{dlq_retry.description}; with filters, --limit N retries the N newest "
                             f"(default {BULK_LIMIT})")
    dlq_retry.add_argument("--yes", action="store_true", help="confirm retrying more than one")
    dlq_retry.set_defaults(run=cmd_dlq_retry)

    replay = subparser(sub, "replay", "deliver stored events again (new deliveries linked to the old)",
                       "  alertd replay evt_01J… [--channel NAME]\n"
                       "  alertd replay --event 'pr.*' --since 1h --state dead --dry-run")
    add_remote_args(replay)
    replay.add_argument("event_id", nargs="?", help="replay this one event")
    replay.add_argument("--channel", action="append",
                        help="with EVENT_ID: only to this channel (repeatable); bulk: only deliveries to this "
                             "channel (one: the deliveries API filters on a single channel)")
    replay.add_argument("--event", dest="pattern", help="bulk: event name, 'prefix.*' or '*'")
    replay.add_argument("--since", help="bulk: deliveries created since (e.g. 1h, or an ISO time)")
    # the bulk-only flags default to None so that cmd_replay can refuse them next to an EVENT_ID
    replay.add_argument("--until", help="bulk: deliveries created before")
    replay.add_argument("--state", help=f"bulk: delivery state to replay (default {BULK_STATE})")
    replay.add_argument("--limit", type=int, help=f"bulk: at most this many (default {BULK_LIMIT})")
    replay.add_argument("--dry-run", action="store_true",
                        help="show what would be replayed and send nothing (with EVENT_ID: the channels the "
                             "routes match now, or the --channel ones)")
    replay.set_defaults(run=cmd_replay)


def _delivery_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel")
    p.add_argument("--event", dest="pattern", help="event name, 'prefix.*' or '*'")
    p.add_argument("--since", help="a duration ago (1h, 7d) or an ISO-8601 time")
    p.add_argument("--until")
    p.add_argument("--limit", type=int, default=50)


def check_times(args: argparse.Namespace) -> None:
    for flag in ("since", "until"):
        value = getattr(args, flag, None)
        if value is None:
            continue
        try:
            parse_instant(value, time.time())
        except ValueError:
            raise CliError(f"--{flag} {value[:40]!r}: use a duration ago like 1h, 30m, 7d, "
                           "or an ISO-8601 time") from None
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise CliError("--limit must be at least 1")


def remote(args: argparse.Namespace, work: Callable[[AdminClient], Awaitable[int]]) -> int:
    check_times(args)

    async def go() -> int:
        async with AdminClient(args.url, args.key) as client:
            try:
                return await work(client)
            except (KeyError, IndexError, TypeError, AttributeError) as exc:
                # a 2xx whose JSON is not the shape asked for (another service at --url, an older or newer
                # daemon): one line, not a traceback from deep inside the table code
                raise ClientError(f"unexpected answer from {args.url}: {unexpected(exc)}") from None

    return run_async(go)


def unexpected(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no field {str(exc.args[0])[:60]!r}" if exc.args else "a field is missing"
    return f"a field has the wrong type ({type(exc).__name__})"


def delivery_rows(deliveries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(d["id"], d.get("event"), d["channel"], d["state"], d["attempts"], d["last_error"]) for d in deliveries]


DELIVERY_COLUMNS = ["id", "event", "channel", "state", "attempts", "last error"]


def cmd_events_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/events", params={
            "event": args.pattern, "severity": args.severity, "since": args.since, "until": args.until,
            "limit": args.limit})
        if args.json:
            emit_json(data)
        else:
            table(None, ["id", "event", "severity", "created", "deliveries"],
                  [(e["id"], e["event"], e["severity"], e["created_at"], e["deliveries"]) for e in data["events"]])
        return 0
    return remote(args, work)


def cmd_events_show(args: argparse.Namespace) -> int:
    path = f"/v1/admin/events/{segment(args.event_id, 'event id')}"

    async def work(client: AdminClient) -> int:
        data = await client.call("GET", path)
        if args.json:
            emit_json(data)
            return 0
        console = Console()
        console.print(f"[bold]{data['event']}[/bold]  {data['id']}  {data['severity']}  {data['created_at']}")
        console.print_json(orjson.dumps(data["payload"]).decode())
        rows = []
        for d in data["deliveries"]:
            for a in d["attempts_list"] or [None]:
                rows.append((d["id"], d["channel"], d["state"], d["origin"],
                             a and a["number"], a and a["outcome"], a and a["http_status"], a and a["error"]))
        table("deliveries", ["delivery", "channel", "state", "origin", "try", "outcome", "status", "error"], rows)
        return 0
    return remote(args, work)


def cmd_deliveries_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/deliveries", params={
            "state": args.state, "channel": args.channel, "event": args.pattern, "since": args.since,
            "until": args.until, "limit": args.limit})
        emit_json(data) if args.json else table(None, DELIVERY_COLUMNS, delivery_rows(data["deliveries"]))
        return 0
    return remote(args, work)


def cmd_dlq_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/dlq", params={
            "channel": args.channel, "event": args.pattern, "since": args.since, "until": args.until,
            "limit": args.limit})
        emit_json(data) if args.json else table(None, DELIVERY_COLUMNS, delivery_rows(data["deliveries"]))
        return 0
    return remote(args, work)


def cmd_dlq_retry(args: argparse.Namespace) -> int:
    bulk = any(getattr(args, f) for f in ("channel", "pattern", "since", "until"))
    if not args.ids and not bulk:
        raise CliError("give delivery ids, or --channel/--event/--since to retry every dead one that matches")
    if args.ids and (bulk or args.limit is not None):
        raise CliError("give delivery ids or filters (--channel/--event/--since/--until/--limit), not both")

    async def work(client: AdminClient) -> int:
        ids = list(args.ids)
        if bulk:
            # the API's {"filter": ...} takes no --limit (it caps at 10,000): the CLI picks the newest N itself
            # and retries by id, so the count it asks --yes for is the count it retries
            found = await collect(client, "/v1/admin/dlq", {"channel": args.channel, "event": args.pattern,
                                                            "since": args.since, "until": args.until},
                                  args.limit or BULK_LIMIT)
            ids = [d["id"] for d in found]
        if len(ids) > 1 and not args.yes:
            raise CliError(f"{len(ids)} dead deliveries match; pass --yes to retry them all")
        retried = await in_chunks(client, "/v1/admin/dlq/retry", ids, "retrying", args.json,
                                  lambda data: data["ids"])
        emit_json({"retried": len(retried), "ids": retried}) if args.json else \
            print(f"retried {len(retried)} of {len(ids)} dead deliveries (the rest were no longer dead)")
        return 0
    return remote(args, work)


async def collect(client: AdminClient, path: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < limit:
        page = await client.call("GET", path, params={**params, "cursor": cursor,
                                                      "limit": min(500, limit - len(found))})
        found.extend(page["deliveries"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found
    # stopped at the limit: say so when more match, rather than act on part of them without a word
    if (await client.call("GET", path, params={**params, "cursor": cursor, "limit": 1}))["deliveries"]:
        print(f"alertd: more deliveries match than the {limit} taken (--limit); run again for the rest, or raise "
              "--limit", file=sys.stderr)
    return found


async def in_chunks(client: AdminClient, path: str, ids: list[int], label: str, quiet: bool,
                    pick: Callable[[Any], list[Any]]) -> list[Any]:
    done: list[Any] = []
    with Progress(disable=quiet or not sys.stderr.isatty(), console=Console(stderr=True)) as progress:
        task = progress.add_task(label, total=len(ids))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            data = await client.call("POST", path, body={"ids": chunk}, headers={"X-Confirm-Destructive": "true"})
            done.extend(pick(data))
            progress.advance(task, len(chunk))
    return done


def cmd_replay(args: argparse.Namespace) -> int:
    bulk = args.pattern is not None or args.since is not None
    if args.event_id and bulk:
        raise CliError("give an EVENT_ID or bulk filters (--event/--since), not both")
    bulk_only = [flag for flag, value in (("--until", args.until), ("--state", args.state),
                                          ("--limit", args.limit)) if value is not None]
    if args.event_id and bulk_only:
        raise CliError(f"{', '.join(bulk_only)}: only for a bulk replay (--event/--since), not with an EVENT_ID")
    if not args.event_id and not bulk:
        raise CliError("give an EVENT_ID, or --event and/or --since for a bulk replay")
    if bulk and args.channel and len(args.channel) > 1:
        raise CliError("a bulk replay takes one --channel (the deliveries API filters on a single channel); "
                       "run it once per channel")
    if args.event_id:
        path = f"/v1/admin/events/{segment(args.event_id, 'event id')}"
        if args.dry_run:
            return remote(args, lambda client: _replay_one_dry(client, args, path))
        return remote(args, lambda client: _replay_one(client, args, f"{path}/replay"))
    return remote(args, lambda client: _replay_bulk(client, args))


async def _replay_one_dry(client: AdminClient, args: argparse.Namespace, path: str) -> int:
    """What `_replay_one` would make, from reads only: the event (a 404 as for the real thing) and the
    channels it would go to. Unknown --channel names are only refused by the real replay."""
    event = await client.call("GET", path)
    if args.channel:
        channels = list(dict.fromkeys(args.channel))
    else:
        # the replay sends to the routes that match now, which the route tester answers without side effects
        verdict = await client.call("POST", "/v1/admin/routes/test", body={
            "event": event["event"], "payload": event["payload"], "severity": event["severity"]})
        channels = list(verdict["channels"])
    # the replay links each new delivery to the event's delivery on that channel, if it had one
    replay_of = {d["channel"]: d["id"] for d in event["deliveries"]}
    would = [{"channel": c, "replay_of": replay_of.get(c)} for c in channels]
    if args.json:
        emit_json({"dry_run": True, "event_id": event["id"], "count": len(would), "deliveries": would})
    elif not would:
        print(f"{event['id']}: no route matches it now; nothing would be replayed (dry run)")
    else:
        print(f"{event['id']}: would replay to {', '.join(channels)} (dry run; nothing sent)")
    return 0


async def _replay_one(client: AdminClient, args: argparse.Namespace, path: str) -> int:
    body = {"channels": args.channel} if args.channel else {}
    data = await client.call("POST", path, body=body)
    if args.json:
        emit_json(data)
    elif not data["deliveries"]:
        print(f"{data['event_id']}: no route matches it now; nothing replayed (name channels with --channel)")
    else:
        print(f"{data['event_id']}: replaying to {', '.join(d['channel'] for d in data['deliveries'])} "
              f"(deliveries {', '.join(str(d['id']) for d in data['deliveries'])})")
    return 0


async def _replay_bulk(client: AdminClient, args: argparse.Namespace) -> int:
    found = await collect(client, "/v1/admin/deliveries", {
        "state": args.state or BULK_STATE, "event": args.pattern, "since": args.since, "until": args.until,
        "channel": args.channel[0] if args.channel else None},  # one at most: cmd_replay checks
        args.limit or BULK_LIMIT)
    newest = newest_per_target(found)
    # the API refuses a delivery whose channel is gone (nothing to send it with): left out here, and said
    configured = {c["name"] for c in (await client.call("GET", "/v1/admin/channels"))["channels"]}
    matches = [d for d in newest if d["channel"] in configured]
    gone = sorted({d["channel"] for d in newest if d["channel"] not in configured})
    notes = collapsed_note(len(found) - len(newest)) + gone_note(len(newest) - len(matches), gone)
    if args.dry_run:
        if args.json:
            emit_json({"dry_run": True, "count": len(matches), "deliveries": matches,
                       "collapsed": len(found) - len(newest), "unconfigured": len(newest) - len(matches)})
        else:
            table(f"{len(matches)} deliveries would be replayed{notes}",
                  ["id", "event", "channel", "state", "created"],
                  [(d["id"], d["event"], d["channel"], d["state"], d["created_at"]) for d in matches])
        return 0
    created = await in_chunks(client, "/v1/admin/deliveries/replay", [d["id"] for d in matches], "replaying",
                              args.json, lambda data: data["deliveries"])
    emit_json({"dry_run": False, "count": len(created), "deliveries": created,
               "unconfigured": len(newest) - len(matches)}) if args.json else \
        print(f"replayed {len(created)} deliveries{notes}")
    return 0


def newest_per_target(deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One delivery per (event, channel), the newest (highest id): a dead original and its dead replay
    both match `--state dead`, and replaying both would send the receiver the event twice."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for d in deliveries:
        key = (d["event_id"], d["channel"])
        if key not in newest or d["id"] > newest[key]["id"]:
            newest[key] = d
    kept = {id(d) for d in newest.values()}
    return [d for d in deliveries if id(d) in kept]  # in the API's order, newest first


def gone_note(count: int, channels: list[str]) -> str:
    return f" ({count} to channels no longer configured left out: {', '.join(channels[:5])})" if count else ""


def collapsed_note(collapsed: int) -> str:
    return f" ({collapsed} older deliveries of the same event and channel left out)" if collapsed else ""
