"""What every CLI command shares: errors, the event loop, tables for people and JSON for scripts."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import quote

import orjson
from rich.console import Console
from rich.table import Table


class CliError(Exception):
    """One line for stderr; the command exits 1."""


def segment(value: str | int, what: str) -> str:
    """`value` as one escaped path segment of an admin API path: a name like `../channels/x` must reach
    the resource called that (a 404), never walk to another one."""
    text = str(value)
    if text in ("", ".", ".."):
        # quote() leaves dots as they are, and a bare dot segment means "this or the parent directory" to
        # every URL library and proxy on the way; no alertd name or id can be one, so refuse it here
        raise CliError(f"{what} {text!r} is not a valid name")
    return quote(text, safe="")


def run_async(factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # not on Linux/macOS: asyncio's own loop
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(factory())


def emit_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Aligned; colour only on a terminal (rich decides)."""
    view = Table(title=title, show_edge=False, header_style="bold")
    for column in columns:
        view.add_column(column, overflow="fold")
    for row in rows:
        view.add_row(*["" if v is None else str(v) for v in row])
    Console(width=None if sys.stdout.isatty() else 200).print(view)


def add_remote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("ALERTD_URL", "http://127.0.0.1:8040"),
                   help="daemon URL (default: $ALERTD_URL or http://127.0.0.1:8040)")
    p.add_argument("--key", default=os.environ.get("ALERTD_KEY"), help="API key (default: $ALERTD_KEY)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=os.environ.get("ALERTD_CONFIG"),
                   help="TOML config file (default: $ALERTD_CONFIG; settings also come from ALERTD_* variables)")


def subparser(sub: Any, name: str, help_text: str, examples: str = "") -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, epilog=f"examples:\n{examples}" if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def verbs(parser: argparse.ArgumentParser) -> Any:
    parser.set_defaults(help_parser=parser)  # `alertd channels` alone prints the verbs of `channels`
    return parser.add_subparsers(title="verbs", metavar="VERB")
