"""Changing what is in force, through the admin API: channels, routes, keys, reload; and `emit`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from alertd.cli.history import remote
from alertd.cli.output import CliError, add_remote_args, emit_json, segment, subparser, table, verbs
from alertd.client import AdminClient

MAX_PAYLOAD_FILE = 1024 * 1024


def register(sub: Any) -> None:
    channels = verbs(subparser(sub, "channels", "channels in force"))
    _simple(channels, "list", "every channel, with where it is managed", cmd_channels_list,
            "  alertd channels list\n  alertd channels list --json --url http://127.0.0.1:8040")
    show = _simple(channels, "show", "one channel's config (secrets masked)", cmd_channels_show,
                   "  alertd channels show ops-slack")
    show.add_argument("name")
    test = _simple(channels, "test", "send a synthetic event through one channel now",
                   cmd_channels_test, "  alertd channels test ops-slack")
    test.add_argument("name")

    routes = verbs(subparser(sub, "routes", "routes in force"))
    _simple(routes, "list", "every route in the order they are tried", cmd_routes_list,
            "  alertd routes list\n  alertd routes list --json")
    rtest = _simple(routes, "test", "which routes an event would reach, and why not the others", cmd_routes_test,
                    "  alertd routes test deploy.done --payload '{\"env\": \"prod\"}' --severity error")
    _event_args(rtest)

    keys = verbs(subparser(sub, "keys", "API keys"))
    create = _simple(keys, "create", "make a key; its value is shown once", cmd_keys_create,
                     "  alertd keys create ci --events 'deploy.*' 'build.*'\n"
                     "  alertd keys create ops-admin --role admin")
    create.add_argument("name")
    create.add_argument("--role", choices=["producer", "admin"], default="producer")
    # "extend": `--events 'pr.*' 'ci.*'` and `--events 'pr.*' --events 'ci.*'` both work
    create.add_argument("--events", action="extend", nargs="+", metavar="PATTERN",
                        help="event patterns this key may emit (several after one flag, or the flag repeated)")
    _simple(keys, "list", "keys: name, prefix, scopes, created, last used (never the key)", cmd_keys_list,
            "  alertd keys list")
    revoke = _simple(keys, "revoke", "refuse a key from now on", cmd_keys_revoke, "  alertd keys revoke ci --yes")
    revoke.add_argument("name")
    revoke.add_argument("--yes", action="store_true", help="confirm")

    incidents = verbs(subparser(sub, "incidents", "incidents opened by escalating routes"))
    inc_list = _simple(incidents, "list", "incidents, newest first (default: open ones)", cmd_incidents_list,
                       "  alertd incidents list\n  alertd incidents list --state acked")
    inc_list.add_argument("--state", choices=["open", "acked"], default="open")
    ack = subparser(sub, "ack", "acknowledge an incident: its remaining escalation steps stop",
                    "  alertd ack 17")
    add_remote_args(ack)
    ack.add_argument("incident_id", type=int)
    ack.set_defaults(run=cmd_ack)
    audit = verbs(subparser(sub, "audit", "the audit trail: incident transitions, acks, approvals, escalations"))
    audit_list = _simple(audit, "list", "audit rows, newest first", cmd_audit_list, "  alertd audit list --since 1d")
    audit_list.add_argument("--since")
    audit_list.add_argument("--limit", type=int, default=100)

    reload = subparser(sub, "reload", "re-read the daemon's config file (like SIGHUP); a bad file changes nothing",
                       "  alertd reload\n  alertd reload --json")
    add_remote_args(reload)
    reload.set_defaults(run=cmd_reload)

    emit = subparser(sub, "emit", "send one event (a producer's one-liner)",
                     "  alertd emit pr.run.failed --payload '{\"repo\": \"web\"}' --severity error\n"
                     "  alertd emit backup.done --payload @result.json --idempotency-key backup-2026-11-23")
    add_remote_args(emit)
    _event_args(emit)
    emit.add_argument("--idempotency-key")
    emit.set_defaults(run=cmd_emit)


def _simple(verbs_: Any, name: str, help_text: str, run: Any, examples: str = "") -> argparse.ArgumentParser:
    parser = subparser(verbs_, name, help_text, examples)
    add_remote_args(parser)
    parser.set_defaults(run=run)
    return parser


def _event_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("event", help="the event name")
    p.add_argument("--payload", default="{}", help="a JSON object, or @FILE to read one")
    p.add_argument("--severity", help="info, warning, error or critical")


def payload_of(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            if path.stat().st_size > MAX_PAYLOAD_FILE:
                raise CliError(f"--payload {path}: larger than 1 MiB")
            text = path.read_text()
        except OSError as exc:
            raise CliError(f"--payload {path}: {exc.strerror}") from None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"--payload is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(value, dict):
        raise CliError("--payload must be a JSON object")
    return value


def envelope_of(args: argparse.Namespace) -> dict[str, Any]:
    envelope: dict[str, Any] = {"event": args.event, "payload": payload_of(args.payload)}
    if args.severity:
        envelope["severity"] = args.severity
    if getattr(args, "idempotency_key", None):
        envelope["idempotency_key"] = args.idempotency_key
    return envelope


def cmd_channels_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/channels")
        emit_json(data) if args.json else table(None, ["name", "type", "managed"],
                                                [(c["name"], c["type"], c["managed"]) for c in data["channels"]])
        return 0
    return remote(args, work)


def cmd_channels_show(args: argparse.Namespace) -> int:
    path = f"/v1/admin/channels/{segment(args.name, 'channel name')}"

    async def work(client: AdminClient) -> int:
        data = await client.call("GET", path)
        emit_json(data) if args.json else table(f"{data['name']} ({data['type']}, managed by {data['managed']})",
                                                ["key", "value"], sorted(data["config"].items()))
        return 0
    return remote(args, work)


def cmd_channels_test(args: argparse.Namespace) -> int:
    path = f"/v1/admin/channels/{segment(args.name, 'channel name')}/test"

    async def work(client: AdminClient) -> int:
        data = await client.call("POST", path)
        if args.json:
            emit_json(data)
        elif data["ok"]:
            print(f"{args.name}: delivered (HTTP {data['status']}) in {data['latency_ms']} ms")
        else:
            kind = "retryable" if data["retryable"] else "permanent"
            print(f"{args.name}: failed ({kind}) in {data['latency_ms']} ms: {data['error']}")
        return 0 if data["ok"] else 1
    return remote(args, work)


def cmd_routes_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/routes")
        rows = [(r["priority"], r["name"], r["match"], r["min_severity"], ", ".join(r["channels"]),
                 "yes" if r.get("when") or r.get("any") else "", r["managed"]) for r in data["routes"]]
        emit_json(data) if args.json else table(
            None, ["priority", "name", "match", "min severity", "channels", "conditions", "managed"], rows)
        return 0
    return remote(args, work)


def cmd_routes_test(args: argparse.Namespace) -> int:
    envelope = envelope_of(args)

    async def work(client: AdminClient) -> int:
        data = await client.call("POST", "/v1/admin/routes/test", body=envelope)
        if args.json:
            emit_json(data)
            return 0
        print(f"{data['event']} ({data['severity']}) → {', '.join(data['channels']) or 'no channel'}")
        table(None, ["route", "matched", "why not"],
              [(r["name"], "yes" if r["matched"] else "no", "; ".join(r["reasons"])) for r in data["routes"]])
        return 0
    return remote(args, work)


def cmd_keys_create(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("POST", "/v1/admin/keys", body={
            "name": args.name, "role": args.role, "events": args.events or ["*"]})
        if args.json:
            emit_json(data)
        else:
            print(data["key"])
            print(f"key {data['name']!r} ({data['role']}, events {', '.join(data['events'])}): shown only now",
                  file=sys.stderr)
        return 0
    return remote(args, work)


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/keys")
        rows = [(k["name"], k["role"], k["prefix"], ", ".join(k["events"]), k["managed"], k["created_at"],
                 k["last_used_at"], k["revoked_at"]) for k in data["keys"]]
        emit_json(data) if args.json else table(
            None, ["name", "role", "prefix", "events", "managed", "created", "last used", "revoked"], rows)
        return 0
    return remote(args, work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CliError(f"revoking {args.name!r} refuses it at once everywhere; pass --yes to confirm")
    path = f"/v1/admin/keys/{segment(args.name, 'key name')}"

    async def work(client: AdminClient) -> int:
        data = await client.call("DELETE", path, headers={"X-Confirm-Destructive": "true"})
        emit_json(data) if args.json else print(f"revoked {args.name}")
        return 0
    return remote(args, work)


def cmd_reload(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("POST", "/v1/admin/reload")
        emit_json(data) if args.json else print(
            f"reloaded: {data['channels']} channels, {data['routes']} routes, {data['keys']} keys")
        return 0
    return remote(args, work)


def cmd_emit(args: argparse.Namespace) -> int:
    envelope = envelope_of(args)

    async def work(client: AdminClient) -> int:
        data = await client.call("POST", "/v1/events", body=envelope)
        if args.json:
            emit_json(data)
        elif data.get("duplicate"):
            print(f"{data['id']} (duplicate: already accepted, not sent again)")
        else:
            print(f"{data['id']} accepted: {data['deliveries']} deliveries")
        return 0
    return remote(args, work)


def cmd_incidents_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/incidents", params={"state": args.state})
        rows = [(i["id"], i["event"], i["severity"], i["route"], i["state"], i["step"], i["opened_at"],
                 i["next_step_at"], i["acked_by"]) for i in data["incidents"]]
        emit_json(data) if args.json else table(
            None, ["id", "event", "severity", "route", "state", "step", "opened", "next step", "acked by"], rows)
        return 0
    return remote(args, work)


def cmd_ack(args: argparse.Namespace) -> int:
    path = f"/v1/admin/incidents/{segment(args.incident_id, 'incident id')}/ack"

    async def work(client: AdminClient) -> int:
        data = await client.call("POST", path)
        emit_json(data) if args.json else print(f"incident {args.incident_id} acknowledged ({data['event']})")
        return 0
    return remote(args, work)


def cmd_audit_list(args: argparse.Namespace) -> int:
    async def work(client: AdminClient) -> int:
        data = await client.call("GET", "/v1/admin/audit", params={"since": args.since, "limit": args.limit})
        rows = [(a["at"], a["what"], a["subject"], a["actor"], orjson.dumps(a["detail"]).decode())
                for a in data["audit"]]
        emit_json(data) if args.json else table(None, ["when", "what", "subject", "by", "detail"], rows)
        return 0
    return remote(args, work)
