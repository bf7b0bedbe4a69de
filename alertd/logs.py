"""Logging is configured here, at the entry point only; library modules just get a logger."""

from __future__ import annotations

import logging
import sys

import structlog
from aiohttp.http_exceptions import HttpProcessingError


class _UnparseableRequests(logging.Filter):
    """aiohttp logs a request it cannot parse (a control character in a header, a header over the size
    limit) as a plain-text traceback whose message quotes the offending header line — an API key, if that
    was the line. Such records become one JSON line naming only the error class."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        structlog.get_logger("alertd.api").warning("unparseable_request", error=type(exc).__name__,
                                                   status=exc.code, remote=str(remote))
        return False


_UNPARSEABLE = _UnparseableRequests()


def configure(level: str = "info", fmt: str = "json") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    server_log = logging.getLogger("aiohttp.server")
    if _UNPARSEABLE not in server_log.filters:
        server_log.addFilter(_UNPARSEABLE)
