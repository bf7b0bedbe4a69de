"""Every error leaves as JSON in one shape: {"error": {"code", "message", "field"?}}. Never a stack trace."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from alertd.api.state import MAX_BODY
from alertd.errors import RequestError
from alertd.store import StoreUnavailable

log = structlog.get_logger("alertd.api")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 415: "unsupported_media_type", 429: "rate_limited",
          503: "unavailable"}


_JSON = {"Content-Type": "application/json"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # a plain header dict: the content_type= setter parses and rebuilds the header on every response
    return web.Response(body=orjson.dumps(data), status=status, headers={**_JSON, **headers} if headers else _JSON)


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return json_response({"error": error}, status=status, headers=headers)


class ApiError(RequestError):
    """A refusal decided by the HTTP layer itself (a bad parameter, a missing confirmation)."""


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestError as exc:  # ApiError and every domain refusal (ingest, changes, scheduler, replay)
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)
    except StoreUnavailable:
        # wherever a write could not commit: nothing was changed, and the client should come back
        return error_response(503, "store_unavailable", "the store cannot commit right now; nothing was changed",
                              headers={"Retry-After": "5"})
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY]
        return error_response(413, "too_large", f"request body is larger than {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "error")
        return error_response(exc.status, code, exc.reason or code, headers=_allow_header(exc))
    except Exception:
        log.exception("request_failed", method=request.method, path=request.rel_url.path)
        return error_response(500, "internal", "internal error; see the daemon's log")


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else None
