"""Commands that work on this machine: run the daemon, check a config, migrate and back up the database,
run a local receiver."""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from typing import Any

from alertd.cli.output import CliError, add_config_arg, run_async, subparser
from alertd.config import load_config, split_listen


def register(sub: Any) -> None:
    serve = subparser(sub, "serve", "run the daemon", "  alertd serve --config /etc/alertd/alertd.toml")
    add_config_arg(serve)
    serve.set_defaults(run=cmd_serve)

    check = subparser(sub, "check-config", "validate a config file without starting",
                      "  alertd check-config --config alertd.toml")
    add_config_arg(check)
    check.set_defaults(run=cmd_check_config)

    migrate = subparser(sub, "migrate", "apply database migrations (serve also does this at start)",
                        "  alertd migrate --config /etc/alertd/alertd.toml")
    add_config_arg(migrate)
    migrate.set_defaults(run=cmd_migrate)

    backup = subparser(sub, "backup", "copy the database consistently, even while the daemon runs",
                       "  alertd backup /backup/alertd-2026-11-23.db --config /etc/alertd/alertd.toml")
    add_config_arg(backup)
    backup.add_argument("path", help="the file to write (must not exist unless --force)")
    backup.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    backup.set_defaults(run=cmd_backup)

    receive = subparser(sub, "receive", "run a local webhook receiver that prints deliveries",
                        "  alertd receive --secret whsec_… --listen 127.0.0.1:8041\n"
                        "  alertd receive --status 500      # see how alertd retries")
    receive.add_argument("--listen", default="127.0.0.1:8041", help="HOST:PORT (default 127.0.0.1:8041)")
    receive.add_argument("--secret", default=os.environ.get("ALERTD_RECEIVE_SECRET"),
                         help="verify signatures with this secret (whsec_… or the e11 secret)")
    receive.add_argument("--status", type=int, default=200, help="HTTP status to answer (default 200)")
    receive.set_defaults(run=cmd_receive)


def cmd_serve(args: argparse.Namespace) -> int:
    from alertd import logs
    from alertd.daemon import Daemon

    config = load_config(args.config)
    logs.configure(config.settings.log.level, config.settings.log.format)

    async def serve() -> int:
        await Daemon(config).run()
        return 0

    return run_async(serve)


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
    # absolute: a relative path resolves against where the command runs, which may not be the daemon's
    path = config.settings.storage.path.resolve()
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


def cmd_backup(args: argparse.Namespace) -> int:
    from alertd.store.backup import BackupError, backup

    config = load_config(args.config)
    target = Path(args.path)
    if target.exists() and not args.force:
        raise CliError(f"{target} exists; pass --force to overwrite it")
    source = config.settings.storage.path.resolve()  # absolute, so a copy of the wrong file shows at once
    try:
        pages, events = backup(source, target)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(f"backed up {source} → {target}: {pages} pages, {events} events, integrity ok")
    return 0


def cmd_receive(args: argparse.Namespace) -> int:
    from alertd.receiver import serve

    try:
        host, port = split_listen(args.listen)
    except ValueError as exc:
        raise CliError(f"--listen: {exc}") from None
    if not 100 <= args.status <= 599:
        raise CliError("--status must be an HTTP status code (100-599)")
    serve(host, port, args.secret, args.status)
    return 0
