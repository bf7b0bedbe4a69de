"""Signed action links (ack an incident, approve an action): pure. A token names what it acts on and
when it expires, carries a random id, and is HMAC-signed; the store makes each id usable once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Literal

import orjson

Kind = Literal["ack", "approve"]
MAX_TOKEN = 512


class LinkError(Exception):
    """Why a link cannot be used: shown to the person who followed it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Claim:
    kind: Kind
    subject: int
    expires_at: int
    jti: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, kind: Kind, subject: int, expires_at: float) -> str:
    body = _b64(orjson.dumps({"k": kind, "s": subject, "x": int(expires_at), "j": _b64(os.urandom(12))}))
    return body + "." + _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def verify(secret: bytes, token: str, kind: Kind, now: float) -> Claim:
    # a token is base64url, so ASCII: compare_digest raises TypeError on non-ASCII str (a 500, not a 400)
    if not token or len(token) > MAX_TOKEN or token.count(".") != 1 or not token.isascii():
        raise LinkError(400, "This link is not valid.")
    body, signature = token.split(".")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        raise LinkError(400, "This link is not valid.")
    try:
        data = orjson.loads(_unb64(body))
        claim = Claim(data["k"], int(data["s"]), int(data["x"]), str(data["j"]))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise LinkError(400, "This link is not valid.") from None
    if claim.kind != kind:
        raise LinkError(400, "This link is not valid here.")
    if claim.expires_at <= now:
        raise LinkError(410, "This link has expired.")
    return claim


def new_secret() -> bytes:
    return os.urandom(32)
