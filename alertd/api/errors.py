"""JSON answers, and the one error shape: {"error": {"code", "message", "field"?}}. Never a stack trace."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from alertd.errors import RequestError

_JSON = {"Content-Type": "application/json"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # a plain header dict: the content_type= setter parses and rebuilds the header on every response
    return web.Response(body=orjson.dumps(data), status=status, headers={**_JSON, **headers} if headers else _JSON)


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error_body(code, message, field), status=status, headers=headers)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


class ApiError(RequestError):
    """A refusal decided by the HTTP layer itself (a bad parameter, a missing confirmation)."""
