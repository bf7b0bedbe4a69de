"""What aiohttp answers by itself, before any route runs: a request it cannot parse (a line or header over
the size limit, a control character in a header, a body in an encoding it does not know). aiohttp's own
answer is text/plain and quotes the offending line — an API key, if that was the line. Ours is the JSON
error shape every other refusal has, and names only the kind of error."""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from alertd.api.errors import error_response
from alertd.api.guard import ERROR_CODES, unreadable


class _JsonErrorHandler(RequestHandler):
    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # aiohttp's own: logs it (logs.py keeps the offending line out of the log), and refuses if a response
        # was already under way; its text answer, which may quote the line, is dropped
        super().handle_error(request, status, exc, None)
        if status >= 500:
            answer = error_response(status, "internal", "internal error; see the daemon's log")
        else:
            kind = type(exc).__name__ if exc is not None else "malformed request"
            answer = error_response(status, ERROR_CODES.get(status, "bad_request"),
                                    unreadable(kind))
        answer.force_close()
        return answer


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """An AppRunner whose connections answer unparseable requests with the JSON error shape."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # the application builds a plain Server; only how it makes a connection's handler differs
        server.__class__ = _JsonErrorServer
        return server
