"""`alertd <command>`: serve and the database commands work locally; the rest go through the HTTP API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from alertd import __version__
from alertd.cli import history, local, manage, silence
from alertd.cli.output import CliError
from alertd.client import ClientError
from alertd.config import ConfigError
from alertd.listening import ListenError

EXAMPLES = """examples:
  alertd serve --config /etc/alertd/alertd.toml
  alertd emit pr.run.failed --payload '{"repo": "web"}' --severity error
  alertd events list --event 'pr.*' --since 1h
  alertd events show evt_01J…
  alertd dlq list
  alertd replay --event 'pr.*' --since 1h --state dead --dry-run
  alertd routes test deploy.done --payload '{"env": "prod"}'

Commands that reach a running daemon take --url/--key (or ALERTD_URL/ALERTD_KEY) and --json.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alertd", description="The alert hub a platform team owns.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"alertd {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    local.register(sub)
    history.register(sub)
    manage.register(sub)
    silence.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        getattr(args, "help_parser", parser).print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except (CliError, ClientError, ConfigError, ListenError) as exc:
        print(f"alertd: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
