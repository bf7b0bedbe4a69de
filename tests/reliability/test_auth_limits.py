"""Keys (wrong, empty, revoked, truncated, very long, on the wrong path or outside their events) and request
limits (headers, body size, nesting, encoding): each a 4xx in the documented shape where alertd answers
itself, the daemon unharmed, nothing stored."""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.integration.conftest import PRODUCER_KEY, raw_http
from tests.reliability.helpers import assert_error_shape, record

pytestmark = pytest.mark.e2e

GOOD = {"event": "auth.ok", "payload": {"n": 1}}


async def count_events(daemon: Any) -> int:
    events = await daemon.all_events()
    daemon.bodies.clear()
    return len(events)


async def test_bad_keys_are_401_or_403_in_the_documented_shape(start_daemon):
    daemon = await start_daemon(keys=[{"name": "producer", "key": PRODUCER_KEY, "events": ["auth.*"]}])
    created = await daemon.admin("POST", "/v1/admin/keys", json_body={"name": "temp", "events": ["auth.*"]})
    assert created.status == 201, created.body
    temp_key = created.json()["key"]
    assert (await daemon.post_events(GOOD, key=temp_key)).status == 202
    revoked = await daemon.admin("DELETE", "/v1/admin/keys/temp", headers={"X-Confirm-Destructive": "true"})
    assert revoked.status == 200, revoked.body
    before = await count_events(daemon)

    cases: dict[str, tuple[dict[str, str], int]] = {
        "none": ({}, 401),
        "empty x-api-key": ({"x-api-key": ""}, 401),
        "blank bearer": ({"Authorization": "Bearer "}, 401),
        "basic scheme": ({"Authorization": "Basic " + PRODUCER_KEY}, 401),
        "wrong": ({"x-api-key": "alertd_wrong_key_0123456789abcdef"}, 401),
        "truncated": ({"x-api-key": PRODUCER_KEY[:-1]}, 401),
        "extended": ({"x-api-key": PRODUCER_KEY + "x"}, 401),
        "prefix only": ({"x-api-key": "alertd_"}, 401),
        "case changed": ({"x-api-key": PRODUCER_KEY.upper()}, 401),
        "revoked": ({"x-api-key": temp_key}, 401),
        "10 KB": ({"x-api-key": "k" * 10_000}, 401),
        "NUL inside": ({"x-api-key": PRODUCER_KEY[:5] + "\x00" + PRODUCER_KEY[6:]}, 401),
    }
    seen: dict[str, int] = {}
    for name, (headers, expected) in cases.items():
        try:
            response = await daemon.post_events(GOOD, key=None, headers=headers)
        except ValueError:  # the client refuses to send a NUL in a header: send the bytes ourselves
            raw = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nx-api-key: {headers['x-api-key']}\r\n"
                   "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").encode()
            status, _, body = await raw_http(daemon.port, raw)
            seen[name] = status
            assert 400 <= status < 500, (name, status, body)
            continue
        seen[name] = response.status
        assert response.status == expected, (name, response.status, response.body)
        assert_error_shape(response.body, response.status, "unauthorized")
        assert response.headers.get("www-authenticate") == "Bearer"

    # 100 KB: over aiohttp's header field limit (16 KiB here); aiohttp answers before alertd sees it
    huge = await raw_http(daemon.port, (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nx-api-key: {'k' * 100_000}\r\n"
                                        "Content-Length: 2\r\nConnection: close\r\n\r\n{}").encode())
    assert 400 <= huge[0] < 500, huge
    seen["100 KB"] = huge[0]

    forbidden = {
        "producer on GET admin": await daemon.request("GET", "/v1/admin/events", key=PRODUCER_KEY),
        "producer on POST admin": await daemon.request("POST", "/v1/admin/channels", key=PRODUCER_KEY,
                                                       json_body={"name": "x", "type": "webhook", "url": "http://a/"}),
        "producer on openapi": await daemon.request("GET", "/v1/admin/openapi.json", key=PRODUCER_KEY),
        "outside its events": await daemon.post_events({"event": "other.thing", "payload": {}}),
        "batch outside its events": await daemon.post_events([GOOD, {"event": "other.thing"}]),
    }
    for name, response in forbidden.items():
        seen[name] = response.status
        assert response.status == 403, (name, response.status, response.body)
        error = assert_error_shape(response.body, 403, "forbidden")
        if name == "batch outside its events":
            assert error["field"] == "[1].event"
    assert await count_events(daemon) == before, "a refused request stored something"
    assert (await daemon.post_events(GOOD)).status == 202  # and the daemon is fine
    # a request aiohttp cannot parse is logged as one JSON line, without the header line that held the key
    assert PRODUCER_KEY[6:] not in daemon.stderr and "k" * 200 not in daemon.stderr
    assert any(r.get("event") == "unparseable_request" for r in daemon.log_records())
    record("auth", statuses=seen, huge_key_answer=f"{huge[0]} {huge[1].get('content-type', '')}")


async def test_size_nesting_and_encoding_limits(start_daemon):
    daemon = await start_daemon()
    before = await count_events(daemon)
    seen: dict[str, Any] = {}

    async def post_bytes(name: str, data: bytes, status: int, code: str) -> None:
        # a BytesIO: aiohttp warns (an error here) about sending megabytes of raw bytes in one write
        headers = {"x-api-key": PRODUCER_KEY, "content-type": "application/json"}
        async with daemon.http.post(daemon.url + "/v1/events", data=io.BytesIO(data), headers=headers) as response:
            body = await response.read()
        seen[name] = response.status
        assert response.status == status, (name, response.status, body[:200])
        assert_error_shape(body, status, code)

    def padded(size: int) -> bytes:
        return b'{"event": "a.b", "payload": {"x": "' + b"x" * size + b'"}}'

    await post_bytes("10 MB body", padded(10_000_000), 413, "too_large")
    await post_bytes("300 KB body", padded(300_000), 413, "too_large")
    await post_bytes("10,000-deep array", b'{"event": "a.b", "payload": {"x": ' + b"[" * 10_000 + b"]" * 10_000
                     + b"}}", 400, "invalid_json")
    await post_bytes("10,000-deep object", b'{"event": "a.b", "payload": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000
                     + b"}", 400, "invalid_json")
    await post_bytes("33-deep payload", b'{"event": "a.b", "payload": ' + b'{"a":' * 33 + b"1" + b"}" * 33 + b"}",
                     400, "invalid_event")
    await post_bytes("invalid UTF-8", b'{"event": "a.b", "payload": {"x": "\xff\xfe"}}', 400, "invalid_json")
    await post_bytes("lone surrogate escape", b'{"event": "a.b", "payload": {"x": "\\ud800"}}', 400, "invalid_json")
    await post_bytes("empty", b"", 400, "invalid_json")
    await post_bytes("501-event batch", ("[" + ",".join(['{"event": "a.b"}'] * 501) + "]").encode(), 413,
                     "too_large")

    # headers: one 20 KB header (over max_field_size), 200 headers of 1 KB, a 10 KB request line
    for name, request in {
        "20 KB header": b"GET /health HTTP/1.1\r\nHost: x\r\nx-big: " + b"h" * 20_000
                        + b"\r\nConnection: close\r\n\r\n",
        "200 x 1 KB headers": b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
            f"x-h{i}: ".encode() + b"v" * 1000 + b"\r\n" for i in range(200)) + b"Connection: close\r\n\r\n",
        "10 KB URL": b"GET /v1/admin/events?x=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    }.items():
        status, headers, body = await raw_http(daemon.port, request)
        seen[name] = f"{status} {headers.get('content-type', '-')}"
        assert 400 <= status < 500 or (name == "200 x 1 KB headers" and status == 200), (name, status, body[:200])
    assert (await daemon.request("GET", "/health")).status == 200
    assert await count_events(daemon) == before, "a refused request stored something"
    record("limits", statuses=seen)
