"""Sign-in with an admin API key, sign-out. A key is never kept: the session remembers its name and hash."""

from __future__ import annotations

import math
import re
import secrets

import structlog
from aiohttp import web

from alertd.ui.sessions import same_token
from alertd.ui.web import COOKIE, SIGNIN_COOKIE, UI, Page, read_form, redirect, safe_next, signed_in

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")  # the alphabet of secrets.token_urlsafe

log = structlog.get_logger("alertd.ui")
MAX_KEY_CHARS = 512


async def login_form(request: web.Request) -> web.StreamResponse:
    ui = request.app[UI]
    target = safe_next(request.query.get("next", "/ui"))
    if ui.session_of(request) is not None:
        return redirect(target)
    return _form(request, target)


def _form(request: web.Request, target: str, *, error: str = "", status: int = 200) -> web.Response:
    ui = request.app[UI]
    token = request.cookies.get(SIGNIN_COOKIE) or ""
    if not (20 <= len(token) <= 100 and _TOKEN_RE.fullmatch(token)):  # only what token_urlsafe makes
        token = secrets.token_urlsafe(32)
    response = ui.render(request, "login.html", status=status, signin_token=token, next=target, error=error,
                         active="login")
    ui.set_cookie(response, SIGNIN_COOKIE, token)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    ui = request.app[UI]
    form = await read_form(request)
    if form is None:
        return _form(request, "/ui", status=400, error="The sign-in form could not be read. Try again.")
    target = safe_next(form.get("next"))
    presented = form.get("signin_token")
    if not same_token(request.cookies.get(SIGNIN_COOKIE) or "", presented if isinstance(presented, str) else None):
        return _form(request, target, status=403, error="The sign-in form expired. Try again.")
    address = request.remote or "unknown"
    wait = ui.throttle.retry_after(address)
    if wait is not None:
        response = _form(request, target, status=429,
                         error=f"Too many failed sign-ins. Wait {math.ceil(wait)} s, then try again.")
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    raw = form.get("key")
    key = ui.runtime.live.lookup_key(raw.strip()) if isinstance(raw, str) and len(raw) <= MAX_KEY_CHARS else None
    if key is None or not key.is_admin:
        ui.throttle.failed(address)
        log.warning("ui_sign_in_refused", remote=address, reason="not_admin" if key is not None else "unknown_key")
        error = "That key is not an admin key." if key is not None else "Unknown or revoked key."
        return _form(request, target, status=401 if key is None else 403, error=error)
    ui.throttle.succeeded(address)
    ui.sessions.drop(request.cookies.get(COOKIE))  # a fresh id on every sign-in: no session fixation
    token, _ = ui.sessions.create(key.name, key.sha256)
    log.info("ui_signed_in", key=key.name, remote=address)
    response = redirect(target)
    ui.set_cookie(response, COOKIE, token)
    response.del_cookie(SIGNIN_COOKIE, path="/ui")
    return response


@signed_in
async def logout(page: Page) -> web.StreamResponse:
    page.ui.sessions.drop(page.request.cookies.get(COOKIE))
    log.info("ui_signed_out", key=page.session.key_name)
    response = redirect("/ui/login")
    response.del_cookie(COOKIE, path="/ui")
    return response
