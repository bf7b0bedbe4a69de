"""Outbound webhook signatures: Standard Webhooks (https://www.standardwebhooks.com) and the e11 scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

STANDARD_SECRET_PREFIX = "whsec_"


def _strict_b64decode(text: str) -> bytes:
    # Strict alphabet (a lenient decode silently drops junk characters and yields a different key), but
    # missing padding is tolerated because secrets are often copied without it.
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def decode_standard_secret(secret: str) -> bytes:
    """`whsec_<base64>` → the key bytes. ValueError if the key is empty or not valid base64.

    A secret without the prefix is used as base64 if it decodes, else as its raw UTF-8 bytes: receivers
    that paste the bare base64 part still interoperate, and a plain passphrase still works. The catch: a
    passphrase that happens to be valid base64 (e.g. "abcd") is decoded; use the prefix to be explicit.
    """
    if secret.startswith(STANDARD_SECRET_PREFIX):
        try:
            key = _strict_b64decode(secret.removeprefix(STANDARD_SECRET_PREFIX))
        except ValueError:  # binascii.Error, or non-ASCII text
            # Never echo the secret: this message ends up in config errors and logs.
            raise ValueError("secret after 'whsec_' is not valid base64") from None
    else:
        try:
            key = _strict_b64decode(secret)
        except ValueError:
            key = secret.encode("utf-8")
    if not key:
        raise ValueError("secret is empty")
    return key


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def standard_headers(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """One `v1,` signature per key, so receivers holding either side of a rotation verify."""
    if not keys:
        raise ValueError("at least one signing key is needed")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(standard_signature(key, msg_id, timestamp, body) for key in keys),
    }


def e11_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def e11_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"x-e11-signature": e11_signature(secret, body)}


def verify_e11(secret: str, body: bytes, header: str) -> bool:
    expected = e11_signature(secret, body).encode("ascii")
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header is attacker-controlled.
    given = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)
