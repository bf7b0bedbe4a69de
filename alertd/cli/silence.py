"""`alertd silence add|list|expire`: mute matching events for a while, through the admin API."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from alertd.cli.history import remote
from alertd.cli.output import CliError, add_remote_args, emit_json, segment, subparser, table, verbs
from alertd.client import AdminClient

COLUMNS = ["id", "state", "event", "conditions", "starts", "ends", "creator", "comment", "managed"]


def register(sub: Any) -> None:
    silence = verbs(subparser(sub, "silence", "silences: mute matching events for a while (deliveries are "
                                              "recorded as skipped)"))
    add = subparser(silence, "add", "silence events matching a pattern (and conditions) for a while",
                    "  alertd silence add --event 'pr.*' --where payload.env=prod --duration 2h "
                    "--comment 'deploy freeze'\n"
                    "  alertd silence add --match payload.host=~'^db-' --duration 30m --comment 'db maintenance'\n"
                    "  alertd silence add --event backup.failed --starts-at 2026-11-24T22:00:00Z "
                    "--ends-at 2026-11-25T02:00:00Z --comment 'NAS swap'")
    add_remote_args(add)
    add.add_argument("--event", default="*", help="event name, 'prefix.*' or '*' (default)")
    add.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                     help="the field equals VALUE (JSON scalars like 500 or true as such, else a string); "
                          "repeatable, all must hold")
    add.add_argument("--match", action="append", default=[], metavar="FIELD=~REGEX",
                     help="the field matches the RE2 regular expression (search: anchor with ^…$); repeatable")
    add.add_argument("--duration", help="how long from the start, e.g. 30m, 2h, 1d (at most 90d)")
    add.add_argument("--starts-at", help="ISO-8601 time (default: now)")
    add.add_argument("--ends-at", help="ISO-8601 time (instead of --duration)")
    add.add_argument("--comment", required=True, help="why (required, at most 1000 characters)")
    add.add_argument("--creator", help="who (default: the name of the API key)")
    add.set_defaults(run=cmd_add)

    listing = subparser(silence, "list", "silences in force (active and pending), newest first",
                        "  alertd silence list\n  alertd silence list --all --json")
    add_remote_args(listing)
    listing.add_argument("--all", action="store_true", help="expired ones too")
    listing.set_defaults(run=cmd_list)

    expire = subparser(silence, "expire", "end a silence now (it stays listed with --all)",
                       "  alertd silence expire 12 --yes")
    add_remote_args(expire)
    expire.add_argument("id", type=int, help="the silence id")
    expire.add_argument("--yes", action="store_true", help="confirm")
    expire.set_defaults(run=cmd_expire)


def condition_of(text: str, *, regex: bool) -> dict[str, Any]:
    """`payload.env=prod` → eq (a JSON scalar as such, else the text); `payload.host=~^db-` → matches."""
    separator = "=~" if regex else "="
    path, found, value = text.partition(separator)
    flag = "--match" if regex else "--where"
    if not found or not path:
        raise CliError(f"{flag} {text[:60]!r}: write FIELD{separator}{'REGEX' if regex else 'VALUE'}, "
                       "e.g. payload.env" + ("=~'^prod'" if regex else "=prod"))
    if regex:
        return {"field": path, "op": "matches", "value": value}
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = value
    if isinstance(parsed, dict | list):
        parsed = value  # only scalars are read as JSON; anything else is the text itself
    return {"field": path, "op": "eq", "value": parsed}


def body_of(args: argparse.Namespace) -> dict[str, Any]:
    if (args.duration is None) == (args.ends_at is None):
        raise CliError("give --duration (e.g. 2h) or --ends-at, one of them")
    conditions = [condition_of(t, regex=False) for t in args.where] + [condition_of(t, regex=True)
                                                                       for t in args.match]
    body: dict[str, Any] = {"event": args.event, "comment": args.comment}
    optional = {"when": conditions or None, "duration": args.duration, "starts_at": args.starts_at,
                "ends_at": args.ends_at, "creator": args.creator}
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def conditions_text(silence: dict[str, Any]) -> str:
    parts = ["{field} {op} {value}".format(**{"value": "", **c}).strip() for c in silence.get("when", [])]
    parts += ["(" + " and ".join(f"{c['field']} {c['op']} {c.get('value', '')}".strip() for c in group) + ")"
              for group in silence.get("any", [])]
    return "; ".join(parts)


def rows_of(silences: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(s["id"], s["state"], s["event"], conditions_text(s), s["starts_at"], s["ends_at"], s["creator"],
             s["comment"], s["managed"]) for s in silences]


def cmd_add(args: argparse.Namespace) -> int:
    body = body_of(args)

    async def work(client: AdminClient) -> int:
        data = await client.call("POST", "/v1/admin/silences", body=body)
        emit_json(data) if args.json else print(
            f"silence {data['id']} ({data['state']}) on {data['event']} until {data['ends_at']}")
        return 0
    return remote(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/silences", params={"state": "all" if args.all else None})
        emit_json(data) if args.json else table(None, COLUMNS, rows_of(data["silences"]))
        return 0
    return remote(args, work)


def cmd_expire(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CliError(f"expiring silence {args.id} lets its events through again at once; pass --yes to confirm")
    path = f"/v1/admin/silences/{segment(args.id, 'silence id')}"

    async def work(client: AdminClient) -> int:
        data = await client.call("DELETE", path, headers={"X-Confirm-Destructive": "true"})
        emit_json(data) if args.json else print(f"silence {data['id']} expired")
        return 0
    return remote(args, work)
