from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from alertd.signing import (
    decode_standard_secret,
    e11_headers,
    e11_signature,
    standard_headers,
    standard_signature,
    verify_e11,
)

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET_A = "whsec_" + base64.b64encode(b"key-a" * 6).decode()
SECRET_B = "whsec_" + base64.b64encode(b"key-b" * 6).decode()
BODY = b'{"id":"evt_1","event":"disk.full","payload":{"host":"db1"}}'


def test_spec_vector() -> None:
    key = decode_standard_secret(SPEC_SECRET)
    assert standard_signature(key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_spec_vector_headers() -> None:
    headers = standard_headers([decode_standard_secret(SPEC_SECRET)], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }


def test_reference_library_verifies() -> None:
    now = int(time.time())
    headers = standard_headers([decode_standard_secret(SECRET_A)], "msg_1", now, BODY)
    assert Webhook(SECRET_A).verify(BODY, headers) == {"id": "evt_1", "event": "disk.full",
                                                       "payload": {"host": "db1"}}


def test_reference_library_rejects_other_secret_and_tampered_body() -> None:
    now = int(time.time())
    headers = standard_headers([decode_standard_secret(SECRET_A)], "msg_1", now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_B).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(BODY.replace(b"db1", b"db2"), headers)


def test_rotation_either_secret_verifies() -> None:
    now = int(time.time())
    keys = [decode_standard_secret(SECRET_A), decode_standard_secret(SECRET_B)]
    headers = standard_headers(keys, "msg_2", now, BODY)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    Webhook(SECRET_A).verify(BODY, headers)
    Webhook(SECRET_B).verify(BODY, headers)


def test_standard_headers_needs_a_key() -> None:
    with pytest.raises(ValueError):
        standard_headers([], "msg_1", 1, BODY)


def test_decode_prefixed_secret() -> None:
    assert decode_standard_secret("whsec_" + base64.b64encode(b"\x00\xffkey").decode()) == b"\x00\xffkey"


def test_decode_prefixed_secret_without_padding() -> None:
    encoded = base64.b64encode(b"12345").decode()
    assert encoded.endswith("=")
    assert decode_standard_secret("whsec_" + encoded.rstrip("=")) == b"12345"


def test_decode_unprefixed_base64_matches_reference_library() -> None:
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert decode_standard_secret(bare) == decode_standard_secret(SPEC_SECRET)
    now = int(time.time())
    Webhook(bare).verify(BODY, standard_headers([decode_standard_secret(bare)], "msg_3", now, BODY))


def test_decode_unprefixed_non_base64_is_raw_utf8() -> None:
    assert decode_standard_secret("correct horse battery!") == b"correct horse battery!"
    assert decode_standard_secret("pässwörd") == "pässwörd".encode()


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not-base64-Zq9!", "whsec_Zq9Xw", "whsec_pässwörd", ""])
def test_decode_rejects_bad_secrets_without_echoing_them(secret: str) -> None:
    with pytest.raises(ValueError) as info:
        decode_standard_secret(secret)
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in str(info.value)


def test_e11_signature_is_hex_hmac_of_raw_body() -> None:
    expected = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert e11_signature("s3cret", BODY) == f"sha256={expected}"
    assert e11_headers("s3cret", BODY) == {"x-e11-signature": f"sha256={expected}"}


def test_e11_key_is_utf8_of_secret() -> None:
    expected = hmac.new("clé".encode(), BODY, hashlib.sha256).hexdigest()
    assert e11_signature("clé", BODY) == f"sha256={expected}"


def test_verify_e11() -> None:
    header = e11_signature("s3cret", BODY)
    assert verify_e11("s3cret", BODY, header)
    assert verify_e11("s3cret", BODY, f" {header}\t")
    assert not verify_e11("other", BODY, header)
    assert not verify_e11("s3cret", BODY + b" ", header)
    assert not verify_e11("s3cret", BODY, header.removeprefix("sha256="))
    assert not verify_e11("s3cret", BODY, "")
    assert not verify_e11("s3cret", BODY, "sha256=ü")
