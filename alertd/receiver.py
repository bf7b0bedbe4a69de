"""`alertd receive`: a local webhook receiver that prints each delivery and checks its signature —
for the demo, and for checking a signing setup before pointing a channel at the real endpoint."""

from __future__ import annotations

import hmac
import sys
import time

import orjson
from aiohttp import web

from alertd.listening import bind_listen
from alertd.signing import decode_standard_secret, standard_signature, verify_e11

MAX_SKEW_S = 300


def signature_verdict(secret: str | None, headers: dict[str, str], body: bytes, now: float) -> str:
    if secret is None:
        return "unchecked"
    if "x-e11-signature" in headers:
        return "valid (e11)" if verify_e11(secret, body, headers["x-e11-signature"]) else "INVALID (e11)"
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not (stamp.isascii() and stamp.isdigit()):
        return "MISSING"
    if abs(now - int(stamp)) > MAX_SKEW_S:
        return "STALE timestamp"
    expected = standard_signature(decode_standard_secret(secret), msg_id, int(stamp), body)
    offered = headers.get("webhook-signature", "").split()
    return "valid" if any(hmac.compare_digest(expected, s) for s in offered) else "INVALID"


def build_receiver(secret: str | None, status: int) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verdict = signature_verdict(secret, headers, body, time.time())
        try:
            data = orjson.loads(body)
            summary = f"{data.get('severity', '?'):<8} {data.get('event', '?')}  {data.get('id', '')}"
        except (orjson.JSONDecodeError, AttributeError):
            summary = f"{len(body)} bytes, not JSON"
        print(f"{time.strftime('%H:%M:%S')}  {summary}  id={headers.get('webhook-id', '-')}  "
              f"signature={verdict}  → {status}", flush=True)
        return web.Response(status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


def serve(host: str, port: int, secret: str | None, status: int) -> None:
    # bound first: a port in use is one ListenError line (main prints it, exit 1), and "receiving on" is
    # only said once the kernel already queues connections for us
    sockets = bind_listen(host, port)
    bound = int(sockets[0].getsockname()[1])  # the real port when asked for 0
    shown = f"[{host}]" if ":" in host else host
    print(f"receiving on http://{shown}:{bound}/ (answering {status}); Ctrl-C stops", file=sys.stderr, flush=True)
    web.run_app(build_receiver(secret, status), sock=sockets, print=None)
