"""The one wrapper every route runs in: API-key auth on /v1/ paths, and every error as JSON in one shape
({"error": {"code", "message", "field"?}}, never a stack trace).

Not aiohttp middlewares, on purpose. An application with any middleware at all makes aiohttp wrap every
request in a layer per middleware plus a current-app context of its own: two trivial middlewares cost
~11 µs a request on this machine, a quarter of what a bare aiohttp handler costs in all (bench/README.md).
The same work, done in one frame added when the route is, costs next to nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NoReturn

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from alertd.api.auth import authenticate
from alertd.api.errors import error_response
from alertd.api.state import MAX_BODY
from alertd.errors import RequestError
from alertd.store import StoreUnavailable

log = structlog.get_logger("alertd.api")

ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "too_large", 415: "unsupported_media_type", 417: "expectation_failed",
               429: "rate_limited", 431: "headers_too_large", 503: "unavailable"}
GUARDED = "__alertd_guarded__"  # set on every guard; functools.wraps carries it through outer wrappers


def guarded(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        try:
            path = request.path
            if path.startswith("/v1/"):
                refusal = authenticate(request, path)
                if refusal is not None:
                    return refusal
            return await handler(request)
        except RequestError as exc:  # ApiError and every domain refusal (ingest, changes, scheduler, replay)
            return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)
        except StoreUnavailable:
            # wherever a write could not commit: nothing was changed, and the client should come back
            return error_response(503, "store_unavailable", "the store cannot commit right now; nothing was "
                                  "changed", headers={"Retry-After": "5"})
        except web.RequestPayloadError:
            # a body that does not decode as its Content-Encoding says (gzip named, plain bytes sent)
            return error_response(400, "invalid_body", "the body could not be decoded as its Content-Encoding "
                                  "says", "body")
        except web.HTTPRequestEntityTooLarge:
            limit = request.app[MAX_BODY]
            return error_response(413, "too_large", f"request body is larger than {limit} bytes")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = ERROR_CODES.get(exc.status, "error")
            allow = exc.headers.get("Allow")
            return error_response(exc.status, code, exc.reason or code, headers={"Allow": allow} if allow else None)
        except Exception:
            log.exception("request_failed", method=request.method, path=request.rel_url.path)
            return error_response(500, "internal", "internal error; see the daemon's log")

    setattr(guard, GUARDED, True)
    return guard


def add_route(app: web.Application, method: str, path: str, handler: Handler,
              outer: Callable[[Handler], Handler] | None = None) -> None:
    """`handler` inside the guard (and `outer` around that, if given). A GET answers HEAD too, as add_get does."""
    guarded_handler = guarded(handler)
    if outer is not None:
        guarded_handler = outer(guarded_handler)
    if method == "GET":
        app.router.add_get(path, guarded_handler)
    else:
        app.router.add_route(method, path, guarded_handler)


async def unmatched(request: web.Request) -> NoReturn:
    """The last route, for what no other route serves: 405 with Allow when another route has this path
    (what aiohttp itself would answer), else 404. Only ever on a miss, so the scan costs nothing that counts."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()
