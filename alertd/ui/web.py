"""The UI's request plumbing: its state on the app, templates (Jinja2, autoescaped), the session guard,
CSRF on every POST, the security headers, and the static files (served from memory, never from a path
the request names)."""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from multidict import MultiDict

from alertd.api.state import Runtime
from alertd.auth import ApiKey
from alertd.durations import iso
from alertd.store.writer import StoreUnavailable
from alertd.ui.sessions import Session, Sessions, SignInThrottle

log = structlog.get_logger("alertd.ui")
HERE = Path(__file__).parent
COOKIE = "alertd_session"
SIGNIN_COOKIE = "alertd_signin"  # double-submit token for the sign-in form (there is no session yet)
COOKIE_PATH = "/ui"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
NAV = (("overview", "/ui", "Overview"), ("events", "/ui/events", "Events"), ("dlq", "/ui/dlq", "Dead letters"),
       ("incidents", "/ui/incidents", "Incidents"), ("channels", "/ui/channels", "Channels"),
       ("routes", "/ui/routes", "Routes"), ("checks", "/ui/checks", "Checks"), ("silences", "/ui/silences", "Silences"))


def admin_key(runtime: Runtime, sha256: str) -> ApiKey | None:
    """The admin key with this hash if it is still in force (not revoked, not demoted)."""
    # KeyRing offers lookup by plaintext only; the session holds just the hash, hence the private map.
    by_hash: Mapping[str, ApiKey] = getattr(runtime.live.snapshot.keyring, "_by_hash", {})
    key = by_hash.get(sha256.lower())
    return key if key is not None and key.is_admin else None


def safe_next(value: object) -> str:
    """Where to go after signing in: only a path inside the UI, never another site, and only printable
    ASCII (a control character in a Location header makes aiohttp drop the connection instead)."""
    if (not isinstance(value, str) or not value.startswith("/ui") or len(value) > 1000
            or not (value.isascii() and value.isprintable()) or "\\" in value or value.startswith("/ui//")):
        return "/ui"
    return value


async def read_form(request: web.Request) -> MultiDict[str] | None:
    """The posted text fields, or None for a body that is not a readable form (a broken multipart, an
    unknown charset, bytes that are not text): the caller answers 400 instead of raising a 500."""
    try:
        data = await request.post()
    except (ValueError, LookupError, HttpProcessingError):
        return None
    return MultiDict((k, v) for k, v in data.items() if isinstance(v, str))


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# ---- template filters ---------------------------------------------------------------------------

def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "—"
    delta = (time.time() if now is None else now) - ts
    ahead, delta = delta < 0, abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            text = f"{int(delta // size)}{unit}"
            break
    else:
        text = f"{int(delta)}s"
    return f"in {text}" if ahead else f"{text} ago"


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float | None) -> str:
    """3600 → "1h", 90 → "90s", 5400 → "90m": the largest unit that divides it, as the config takes them."""
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1:
        return "100%"
    return f"{math.floor(value * 1000) / 10:.1f}%"  # rounded down: one failure in 10,000 is not "100%"


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             auto_reload=False)
    env.filters.update(ago=ago, when=when, iso=iso, percent=percent, span=span)
    return env


def load_static() -> dict[str, tuple[bytes, str, str]]:
    """name → (bytes, content type, short hash for cache-busting URLs)."""
    found = {}
    for path in sorted((HERE / "static").iterdir()):
        if path.suffix in STATIC_TYPES:
            body = path.read_bytes()
            found[path.name] = (body, STATIC_TYPES[path.suffix], hashlib.sha256(body).hexdigest()[:10])
    return found


class Ui:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.sessions = Sessions()
        self.throttle = SignInThrottle()
        self.templates = make_templates()
        self.static = load_static()
        self.secure_cookies = runtime.config.server.public_url.lower().startswith("https:")

    def static_url(self, name: str) -> str:
        return f"/ui/static/{name}?v={self.static[name][2]}"

    def session_of(self, request: web.Request) -> Session | None:
        token = request.cookies.get(COOKIE)
        session = self.sessions.get(token)
        if session is not None and admin_key(self.runtime, session.key_sha256) is None:
            self.sessions.drop(token)  # the key was revoked or is no longer an admin key
            return None
        return session

    def set_cookie(self, response: web.StreamResponse, name: str, value: str) -> None:
        response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="Strict",
                            secure=self.secure_cookies)

    def render(self, request: web.Request, template: str, *, session: Session | None = None, status: int = 200,
               **values: Any) -> web.Response:
        context = {"session": session, "csrf": session.csrf if session else "", "nav": NAV,
                   "active": values.pop("active", ""), "flashes": session.take_flashes() if session else [],
                   "static_url": self.static_url, "now": time.time(), "request_path": request.path_qs, **values}
        html = self.templates.get_template(template).render(context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def error(self, request: web.Request, status: int, title: str, message: str,
              session: Session | None = None) -> web.Response:
        return self.render(request, "error.html", session=session, status=status, title=title, message=message)


UI = web.AppKey("alertd_ui", Ui)


@dataclass
class Page:
    """What a signed-in handler gets: the request, the UI, the operator's session."""

    request: web.Request
    ui: Ui
    session: Session

    @property
    def runtime(self) -> Runtime:
        return self.ui.runtime

    @property
    def actor(self) -> str:
        return f"ui:{self.session.key_name}"

    def render(self, template: str, *, status: int = 200, **values: Any) -> web.Response:
        return self.ui.render(self.request, template, session=self.session, status=status, **values)

    def error(self, status: int, title: str, message: str) -> web.Response:
        return self.ui.error(self.request, status, title, message, self.session)

    def back(self, location: str, kind: str = "", text: str = "") -> web.Response:
        """POST-redirect-GET, with a message for the next page."""
        if text:
            self.session.flash(kind or "ok", text)
        return redirect(location)

    async def form(self) -> MultiDict[str]:
        """The posted fields (text only: the UI has no uploads); read and checked by the page wrapper first."""
        return await read_form(self.request) or MultiDict()


PageHandler = Callable[[Page], Awaitable[web.StreamResponse]]


def signed_in(handler: PageHandler) -> Handler:
    """The guard on every page but sign-in: a live session, and on POST its CSRF token."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        ui = request.app[UI]
        session = ui.session_of(request)
        if session is None:
            if request.method == "GET":
                return redirect("/ui/login?next=" + quote(safe_next(request.path_qs), safe="/"))
            return ui.error(request, 403, "Signed out", "Your session has ended. Sign in again, then retry.")
        if request.method == "POST":
            form = await read_form(request)
            if form is None:
                return ui.error(request, 400, "Form refused", "This form could not be read. Reload the page and "
                                "try again.", session)
            presented = form.get("csrf")
            if not session.csrf_ok(presented if isinstance(presented, str) else None):
                return ui.error(request, 403, "Form refused", "This form did not carry this session's token "
                                "(it may be from an older session). Reload the page and try again.", session)
        try:
            return await handler(Page(request, ui, session))
        except StoreUnavailable:
            return ui.error(request, 503, "Store unavailable", "alertd cannot write to its database right now; "
                            "nothing was changed. Try again in a moment.", session)
        except Exception:
            log.exception("ui_request_failed", method=request.method, path=request.path)
            return ui.error(request, 500, "Something went wrong", "The details are in alertd's log.", session)

    guarded.__name__ = handler.__name__
    return guarded


def with_page_headers(handler: Handler) -> Handler:
    """Every /ui answer, errors and redirects included, gets the security headers."""

    @functools.wraps(handler)
    async def headed(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # raised, not returned: a redirect passing through the guard
            _page_headers(request.path, exc)
            raise
        _page_headers(request.path, response)
        return response

    return headed


def _page_headers(path: str, response: web.StreamResponse) -> None:
    if path == "/ui" or path.startswith("/ui/"):
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
        if not path.startswith("/ui/static/"):
            response.headers.setdefault("Cache-Control", "no-store")


async def static(request: web.Request) -> web.StreamResponse:
    found = request.app[UI].static.get(request.match_info["name"])
    if found is None:
        return request.app[UI].error(request, 404, "Not found", "No such file.")
    body, content_type, _ = found
    return web.Response(body=body, content_type=content_type,
                        headers={"Cache-Control": "public, max-age=86400"})
