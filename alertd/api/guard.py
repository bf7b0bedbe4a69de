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
from typing import Any, NoReturn

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from alertd.api.auth import admit
from alertd.api.errors import error_body, error_response, json_response
from alertd.api.state import API_KEY, MAX_BODY, RUNTIME
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
                request[API_KEY] = admit(request.app[RUNTIME].live, request.headers.get("x-api-key"),
                                         request.headers.get("Authorization"), path)
            return await handler(request)
        except (RequestError, StoreUnavailable) as exc:
            status, body, headers = refusal(exc)
            return json_response(body, status, headers)
        except web.RequestPayloadError:
            # a body that does not decode as its Content-Encoding says (gzip named, plain bytes sent)
            return error_response(400, "invalid_body", "the body could not be decoded as its Content-Encoding "
                                  "says", "body")
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "too_large", too_large(request.app[MAX_BODY]))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = ERROR_CODES.get(exc.status, "error")
            allow = exc.headers.get("Allow")
            return error_response(exc.status, code, exc.reason or code, headers={"Allow": allow} if allow else None)
        except Exception as exc:
            status, body, headers = failure(exc, request.method, request.rel_url.path)
            return json_response(body, status, headers)

    setattr(guard, GUARDED, True)
    return guard


Answer = tuple[int, dict[str, Any], dict[str, str] | None]  # status, JSON body, extra headers


def refusal(exc: RequestError | StoreUnavailable) -> Answer:
    """The answer to a refusal any handler may raise, for the guard and the ingest front (front.py) alike."""
    if isinstance(exc, RequestError):  # ApiError and every domain refusal (ingest, changes, scheduler, replay)
        return exc.status, error_body(exc.code, exc.message, exc.field), exc.headers
    # wherever a write could not commit: nothing was changed, and the client should come back
    return 503, error_body("store_unavailable", "the store cannot commit right now; nothing was changed"), \
        {"Retry-After": "5"}


def failure(exc: BaseException, method: str, path: str) -> Answer:
    """Any exception: a refusal's answer, or a logged 500 that shows nothing of it."""
    if isinstance(exc, RequestError | StoreUnavailable):
        return refusal(exc)
    log.error("request_failed", method=method, path=path, exc_info=exc)
    return 500, error_body("internal", "internal error; see the daemon's log"), None


def too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes"


def unreadable(kind: str) -> str:
    """What a request that cannot be parsed is told: the kind of error only, never the offending bytes."""
    return f"the request could not be read as HTTP ({kind})"


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
