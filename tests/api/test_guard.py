"""The guard every route runs in (api/guard.py), on the real app: what no route serves still answers in
the JSON error shape, auth comes before routing on /v1/, and /ui answers keep their security headers."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.api.conftest import ADMIN, PRODUCER, Hub


async def raw(hub: Hub, method: str, path: str, key: str | None = ADMIN, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    sent = {**({"x-api-key": key} if key is not None else {}), **(headers or {})}
    async with hub.session.request(method, hub.base + path, data=body, headers=sent,
                                   allow_redirects=False) as response:
        return response.status, dict(response.headers), await response.read()


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/admin/nope", "/v1/events/extra", "/%00", "/" + "a" * 4000])
async def test_a_path_no_route_serves_is_a_json_404(hub: Hub, path: str) -> None:
    status, headers, body = await raw(hub, "GET", path)
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert body == b'{"error":{"code":"not_found","message":"Not Found"}}'


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/events", {"POST"}),
    ("PUT", "/health", {"GET", "HEAD"}),
    ("DELETE", "/v1/admin/events", {"GET", "HEAD"}),
    ("PATCH", "/v1/admin/channels", {"GET", "HEAD", "POST"}),
    ("OPTIONS", "/v1/events", {"POST"}),
])
async def test_a_method_the_path_does_not_take_is_a_json_405_with_allow(hub: Hub, method: str, path: str,
                                                                      allow: set[str]) -> None:
    status, headers, body = await raw(hub, method, path)
    assert status == 405
    assert set(headers["Allow"].split(",")) == allow
    assert b'"code":"method_not_allowed"' in body


async def test_auth_comes_before_routing_on_v1(hub: Hub) -> None:
    """An unknown /v1/ path tells a caller without a key nothing about which paths exist."""
    for path in ("/v1/nope", "/v1/admin/nope", "/v1/events"):
        status, headers, _ = await raw(hub, "GET", path, key=None)
        assert status == 401, path
        assert headers["WWW-Authenticate"] == "Bearer"
    status, _, _ = await raw(hub, "GET", "/v1/admin/nope", key=PRODUCER)
    assert status == 403  # a producer key learns nothing under /v1/admin/ either
    status, _, _ = await raw(hub, "GET", "/v1/admin/events", key="x" * 10_000)
    assert status in (400, 401, 431)  # a hostile header: refused by aiohttp's limit or as unknown, never a 500


async def test_public_paths_need_no_key(hub: Hub) -> None:
    for path, expected in (("/health", 200), ("/ready", 200), ("/nope", 404), ("/ui/login", 200)):
        status, _, _ = await raw(hub, "GET", path, key=None)
        assert status == expected, path


async def test_ui_answers_keep_their_security_headers_errors_included(hub: Hub) -> None:
    for method, path, expected in [("GET", "/ui/login", 200), ("GET", "/ui", 303), ("GET", "/ui/zzz", 404),
                                   ("DELETE", "/ui/events", 405), ("POST", "/ui/zzz", 405),
                                   ("GET", "/ui/static/nope.css", 404)]:
        status, headers, _ = await raw(hub, method, path, key=None)
        assert status == expected, (method, path)
        assert headers["X-Frame-Options"] == "DENY", (method, path)
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], (method, path)
        assert headers["X-Content-Type-Options"] == "nosniff", (method, path)
        if not path.startswith("/ui/static/"):  # static files may be cached; pages never
            assert headers["Cache-Control"] == "no-store", (method, path)


async def test_an_oversized_ui_form_is_a_413_with_page_headers(hub: Hub) -> None:
    limit = hub.daemon.config.server.max_body_bytes
    status, headers, body = await raw(hub, "POST", "/ui/login", key=None, body=b"a=" + b"x" * (limit + 10),
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413
    assert b'"code":"too_large"' in body
    assert headers["X-Frame-Options"] == "DENY"


async def test_api_answers_carry_no_page_headers(hub: Hub) -> None:
    _, headers, _ = await raw(hub, "GET", "/health")
    assert "X-Frame-Options" not in headers
    _, headers, _ = await raw(hub, "GET", "/nope")
    assert "X-Frame-Options" not in headers


async def send_bytes(hub: Hub, request: bytes) -> tuple[int, str, bytes]:
    """Exact bytes on the wire (what no well-behaved client would send); the status, content type and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.daemon.bound_port)
    try:
        writer.write(request)
        await writer.drain()
        head, _, rest = (await asyncio.wait_for(reader.read(65536), 5)).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return int(lines[0].split()[1]), headers.get("Content-Type", ""), rest
    finally:
        writer.close()


@pytest.mark.parametrize("request_bytes", [
    # a control character in the key's header line: aiohttp's own answer quoted the line, key and all
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nx-api-key: " + PRODUCER.encode() + b"\x01\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /v1/admin/events HTTP/1.1\r\nHost: x\r\nx-api-key: " + ADMIN.encode() + b"\r\nX-Big: " + b"a" * 20000
    + b"\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\nx-api-key: " + PRODUCER.encode()
    + b"\r\nContent-Length: 2\r\n\r\n{}",
    b"NOT-HTTP\r\n\r\n",
])
async def test_a_request_aiohttp_cannot_parse_gets_the_json_error_shape_and_no_secret(hub: Hub, request_bytes):
    status, content_type, body = await send_bytes(hub, request_bytes)
    assert 400 <= status < 500 and content_type.startswith("application/json"), (status, content_type, body)
    error = json.loads(body)["error"]
    assert error["code"] and "could not be read as HTTP" in error["message"]
    assert PRODUCER.encode() not in body and ADMIN.encode() not in body


async def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_400(hub: Hub) -> None:
    status, _, body = await raw(hub, "POST", "/v1/events", PRODUCER, b'{"event": "pr.x"}',
                                {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_body"
    assert (await hub.call("GET", "/v1/admin/events"))[1]["events"] == []
