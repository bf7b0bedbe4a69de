"""`alertd <command>`: serve and the database commands work locally; the rest go through the admin API."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from alertd import __version__
from alertd.client import AdminClient, ClientError
from alertd.config import ConfigError, load_config
from alertd.durations import parse_instant

REPLAY_CHUNK = 100
EXAMPLES = """examples:
  alertd serve --config /etc/alertd/alertd.toml
  alertd check-config --config alertd.toml
  alertd events list --event 'pr.*' --since 1h
  alertd events show evt_01J...
  alertd deliveries list --state dead
  alertd replay evt_01J... --channel kosh
  alertd replay --event 'pr.*' --since 1h --state dead --dry-run
"""


class CliError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (CliError, ClientError, ConfigError) as exc:
        print(f"alertd: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alertd", description="The alert hub a platform team owns.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"alertd {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the daemon")
    _config_arg(serve)
    serve.set_defaults(run=cmd_serve)

    check = sub.add_parser("check-config", help="validate a config file without starting")
    _config_arg(check)
    check.set_defaults(run=cmd_check_config)

    migrate = sub.add_parser("migrate", help="apply database migrations (serve also does this at start)")
    _config_arg(migrate)
    migrate.set_defaults(run=cmd_migrate)

    receive = sub.add_parser("receive", help="run a local webhook receiver that prints deliveries")
    receive.add_argument("--listen", default="127.0.0.1:8041", help="HOST:PORT (default 127.0.0.1:8041)")
    receive.add_argument("--secret", default=os.environ.get("ALERTD_RECEIVE_SECRET"),
                         help="verify signatures with this secret (whsec_… or the e11 secret)")
    receive.add_argument("--status", type=int, default=200, help="HTTP status to answer (default 200)")
    receive.set_defaults(run=cmd_receive)

    replay = sub.add_parser(
        "replay", help="deliver stored events again", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="one event:  alertd replay EVENT_ID [--channel NAME]\n"
               "in bulk:    alertd replay --event 'pr.*' --since 1h --state dead [--dry-run]")
    _remote_args(replay)
    replay.add_argument("event_id", nargs="?", help="replay this one event")
    replay.add_argument("--channel", action="append", help="only to this channel (repeatable)")
    replay.add_argument("--event", dest="pattern", help="bulk: event name, 'prefix.*' or '*'")
    replay.add_argument("--since", help="bulk: deliveries created since (e.g. 1h, or an ISO time)")
    replay.add_argument("--until", help="bulk: deliveries created before")
    replay.add_argument("--state", default="dead", help="bulk: delivery state to replay (default dead)")
    replay.add_argument("--limit", type=int, default=10_000, help="bulk: at most this many (default 10000)")
    replay.add_argument("--dry-run", action="store_true", help="bulk: show what would be replayed")
    replay.set_defaults(run=cmd_replay)

    events = sub.add_parser("events", help="list and show stored events").add_subparsers(metavar="VERB")
    ev_list = events.add_parser("list", help="recent events, newest first")
    _remote_args(ev_list)
    ev_list.add_argument("--event", dest="pattern", help="event name, 'prefix.*' or '*'")
    ev_list.add_argument("--severity")
    ev_list.add_argument("--since")
    ev_list.add_argument("--until")
    ev_list.add_argument("--limit", type=int, default=50)
    ev_list.set_defaults(run=cmd_events_list)
    ev_show = events.add_parser("show", help="one event with its deliveries and attempts")
    _remote_args(ev_show)
    ev_show.add_argument("event_id")
    ev_show.set_defaults(run=cmd_events_show)

    deliveries = sub.add_parser("deliveries", help="list deliveries").add_subparsers(metavar="VERB")
    dl_list = deliveries.add_parser("list", help="deliveries, newest first")
    _remote_args(dl_list)
    dl_list.add_argument("--state")
    dl_list.add_argument("--channel")
    dl_list.add_argument("--event", dest="pattern")
    dl_list.add_argument("--since")
    dl_list.add_argument("--limit", type=int, default=50)
    dl_list.set_defaults(run=cmd_deliveries_list)
    return parser


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=os.environ.get("ALERTD_CONFIG"),
                   help="TOML config file (default: $ALERTD_CONFIG; settings also come from ALERTD_* variables)")


def _remote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("ALERTD_URL", "http://127.0.0.1:8040"),
                   help="daemon URL (default: $ALERTD_URL or http://127.0.0.1:8040)")
    p.add_argument("--key", default=os.environ.get("ALERTD_KEY"), help="admin key (default: $ALERTD_KEY)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def run_async(factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # not on Linux/macOS: asyncio's own loop
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(factory())


def cmd_serve(args: argparse.Namespace) -> int:
    from alertd import logs
    from alertd.daemon import Daemon

    config = load_config(args.config)
    logs.configure(config.settings.log.level, config.settings.log.format)

    async def serve() -> int:
        await Daemon(config).run()
        return 0

    return run_async(serve)


def cmd_receive(args: argparse.Namespace) -> int:
    from alertd.config import split_listen
    from alertd.receiver import serve

    try:
        host, port = split_listen(args.listen)
    except ValueError as exc:
        raise CliError(f"--listen: {exc}") from None
    if not 100 <= args.status <= 599:
        raise CliError("--status must be an HTTP status code (100-599)")
    serve(host, port, args.secret, args.status)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    s = config.settings
    print(f"config OK: {len(config.channels)} channels, {len(config.routes)} routes, "
          f"{len(s.keys) + (s.admin_key is not None)} keys, store {s.storage.path}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from alertd.store.migrations import migrate
    from alertd.store.writer import connect

    config = load_config(args.config)
    path = config.settings.storage.path
    try:
        conn = connect(path, config.settings.storage.synchronous)
        try:
            before, after = migrate(conn)
        finally:
            conn.close()
    except (sqlite3.Error, RuntimeError) as exc:
        raise CliError(f"{path}: {exc}") from None
    print(f"{path}: schema version {before} → {after}" if before != after else f"{path}: up to date ({after})")
    return 0


def _emit_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    Console().print(table)


def cmd_events_list(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with AdminClient(args.url, args.key) as client:
            data = await client.call("GET", "/v1/admin/events", params={
                "event": args.pattern, "severity": args.severity, "since": args.since, "until": args.until,
                "limit": args.limit})
        if args.json:
            _emit_json(data)
        else:
            _table(None, ["id", "event", "severity", "created", "deliveries"],
                   [(e["id"], e["event"], e["severity"], e["created_at"], e["deliveries"]) for e in data["events"]])
        return 0
    return run_async(go)


def cmd_events_show(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with AdminClient(args.url, args.key) as client:
            data = await client.call("GET", f"/v1/admin/events/{args.event_id}")
        if args.json:
            _emit_json(data)
            return 0
        console = Console()
        console.print(f"[bold]{data['event']}[/bold]  {data['id']}  {data['severity']}  {data['created_at']}")
        console.print_json(orjson.dumps(data["payload"]).decode())
        rows = []
        for d in data["deliveries"]:
            for a in d["attempts_list"] or [None]:
                rows.append((d["id"], d["channel"], d["state"], d["origin"],
                             a and a["number"], a and a["outcome"], a and a["http_status"], a and a["error"]))
        _table("deliveries", ["delivery", "channel", "state", "origin", "try", "outcome", "status", "error"], rows)
        return 0
    return run_async(go)


def cmd_deliveries_list(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with AdminClient(args.url, args.key) as client:
            data = await client.call("GET", "/v1/admin/deliveries", params={
                "state": args.state, "channel": args.channel, "event": args.pattern, "since": args.since,
                "limit": args.limit})
        if args.json:
            _emit_json(data)
        else:
            _table(None, ["id", "event", "channel", "state", "attempts", "last error"],
                   [(d["id"], d["event"], d["channel"], d["state"], d["attempts"], d["last_error"])
                    for d in data["deliveries"]])
        return 0
    return run_async(go)


def cmd_replay(args: argparse.Namespace) -> int:
    bulk = args.pattern is not None or args.since is not None
    if args.event_id and bulk:
        raise CliError("give an EVENT_ID or bulk filters (--event/--since), not both")
    if not args.event_id and not bulk:
        raise CliError("give an EVENT_ID, or --event and/or --since for a bulk replay")
    for flag, value in (("--since", args.since), ("--until", args.until)):
        if value is not None and not _valid_instant(value):
            raise CliError(f"{flag} {value[:40]!r}: use a duration ago like 1h, 30m, 7d, or an ISO-8601 time")
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    return run_async(lambda: _replay_one(args) if args.event_id else _replay_bulk(args))


def _valid_instant(value: str) -> bool:
    try:
        parse_instant(value, time.time())
    except ValueError:
        return False
    return True


async def _replay_one(args: argparse.Namespace) -> int:
    body = {"channels": args.channel} if args.channel else {}
    async with AdminClient(args.url, args.key) as client:
        data = await client.call("POST", f"/v1/admin/events/{args.event_id}/replay", body=body)
    if args.json:
        _emit_json(data)
    elif not data["deliveries"]:
        print(f"{data['event_id']}: no route matches it now; nothing replayed (name channels with --channel)")
    else:
        channels = ", ".join(d["channel"] for d in data["deliveries"])
        print(f"{data['event_id']}: replaying to {channels} (deliveries "
              f"{', '.join(str(d['id']) for d in data['deliveries'])})")
    return 0


async def _replay_bulk(args: argparse.Namespace) -> int:
    async with AdminClient(args.url, args.key) as client:
        matches = await _collect_deliveries(client, args)
        if args.dry_run:
            if args.json:
                _emit_json({"dry_run": True, "count": len(matches), "deliveries": matches})
            else:
                _table(f"{len(matches)} deliveries would be replayed", ["id", "event", "channel", "state", "created"],
                       [(d["id"], d["event"], d["channel"], d["state"], d["created_at"]) for d in matches])
            return 0
        created: list[dict[str, Any]] = []
        with Progress(disable=args.json or not sys.stderr.isatty(), console=Console(stderr=True)) as progress:
            task = progress.add_task("replaying", total=len(matches))
            for start in range(0, len(matches), REPLAY_CHUNK):
                chunk = [d["id"] for d in matches[start:start + REPLAY_CHUNK]]
                data = await client.call("POST", "/v1/admin/deliveries/replay", body={"ids": chunk})
                created.extend(data["deliveries"])
                progress.advance(task, len(chunk))
    if args.json:
        _emit_json({"dry_run": False, "count": len(created), "deliveries": created})
    else:
        print(f"replayed {len(created)} deliveries")
    return 0


async def _collect_deliveries(client: AdminClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < args.limit:
        page = await client.call("GET", "/v1/admin/deliveries", params={
            "state": args.state, "event": args.pattern, "since": args.since, "until": args.until,
            "channel": args.channel[0] if args.channel else None, "cursor": cursor,
            "limit": min(500, args.limit - len(found))})
        found.extend(page["deliveries"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return found


if __name__ == "__main__":
    raise SystemExit(main())
