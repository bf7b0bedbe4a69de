"""The ingest front (alertd/api/front.py): plain POST /v1/events answered by it, everything else handed to
aiohttp from the request's first byte, and the same answers either way. Raw sockets: the wire is the point."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from alertd.api.front import MAX_PIPELINED, Front
from tests.api.conftest import ADMIN, PRODUCER, Hub, running_hub

Response = tuple[int, dict[str, str], bytes]


def post(body: bytes | str, *, key: str | None = PRODUCER, path: str = "/v1/events", version: str = "1.1",
         extra: str = "") -> bytes:
    data = body.encode() if isinstance(body, str) else body
    head = f"POST {path} HTTP/{version}\r\nHost: alertd\r\nContent-Type: application/json\r\n"
    if key is not None:
        head += f"x-api-key: {key}\r\n"
    return (head + extra + f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def get(path: str, key: str = ADMIN) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: alertd\r\nx-api-key: {key}\r\n\r\n".encode()


def event(name: str = "pr.run.failed", **extra: Any) -> str:
    return json.dumps({"event": name, "payload": {"n": 1}, **extra})


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
        return int(lines[0].split()[1]), headers, body.replace(b"\r\n", b"")
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 5)
    return int(lines[0].split()[1]), headers, body


OPEN: list[asyncio.StreamWriter] = []


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    OPEN.append(writer)
    return reader, writer


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while OPEN:
        writer = OPEN.pop()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), timeout) == b""
    except ConnectionResetError:
        return True


def by_aiohttp(headers: dict[str, str]) -> bool:
    return "aiohttp" in headers.get("server", "")


async def stored(hub: Hub) -> list[dict[str, Any]]:
    return list((await hub.call("GET", "/v1/admin/events"))[1]["events"])


async def test_plain_ingest_is_answered_by_the_front_on_a_kept_connection(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    for name in ("pr.one", "pr.two"):
        writer.write(post(event(name)))
        status, headers, body = await read_response(reader)
        assert status == 202 and not by_aiohttp(headers)
        assert headers["content-type"] == "application/json" and headers["date"].endswith(" GMT")
        assert json.loads(body)["event"] == name and json.loads(body)["id"].startswith("evt_")
    writer.close()
    assert sorted(e["event"] for e in await stored(hub)) == ["pr.one", "pr.two"]


async def test_pipelined_ingests_are_answered_in_request_order(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    names = [f"pr.p{i}" for i in range(5)]
    writer.write(b"".join(post(event(name)) for name in names))  # one packet, five requests
    answers = [await read_response(reader) for _ in names]
    assert [json.loads(body)["event"] for _, _, body in answers] == names
    writer.close()


async def test_a_chunked_body_and_a_query_are_plain_ingest_too(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    body = event("pr.chunked").encode()
    writer.write(b"POST /v1/events?source=ci HTTP/1.1\r\nHost: a\r\nx-api-key: " + PRODUCER.encode()
                 + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (10, body[:10]))
    await writer.drain()
    await asyncio.sleep(0.05)  # the rest in a later packet
    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body) - 10, body[10:]))
    status, headers, answer = await read_response(reader)
    assert status == 202 and not by_aiohttp(headers) and json.loads(answer)["event"] == "pr.chunked"
    writer.close()


async def test_any_other_request_hands_the_connection_to_aiohttp(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(post(event("pr.before")))
    status, headers, _ = await read_response(reader)
    assert status == 202 and not by_aiohttp(headers)
    writer.write(get("/v1/admin/events"))
    status, headers, body = await read_response(reader)
    assert status == 200 and by_aiohttp(headers)
    assert [e["event"] for e in json.loads(body)["events"]] == ["pr.before"]
    writer.write(post(event("pr.after")))  # the connection stays aiohttp's
    status, headers, _ = await read_response(reader)
    assert status == 202 and by_aiohttp(headers)
    writer.close()


@pytest.mark.parametrize("request_bytes", [
    post(event(), version="1.0"),
    post(event(), path="/v1/events/"),
    post(event(), path="/v1/%65vents"),
    post(event(), extra="Expect: 100-continue\r\n"),
    post(gzip.compress(event().encode()), extra="Content-Encoding: gzip\r\n"),
    b"PUT /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n",
])
async def test_what_is_not_plain_ingest_is_answered_by_aiohttp_as_before(hub: Hub, request_bytes: bytes) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(request_bytes)
    status, headers, body = await read_response(reader)
    if status == 100:  # Expect: 100-continue: aiohttp's interim answer, then the real one
        status, headers, body = await read_response(reader)
    assert by_aiohttp(headers), (status, headers, body)
    # no key: the route's guard refuses before anything else, as for any /v1/ request aiohttp serves
    assert status in (202, 401, 404) or (status == 400 and b"could not be read" in body), (status, body)
    writer.close()


async def test_a_request_pipelined_behind_an_ingest_must_be_ingest_or_it_is_refused(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(post(event("pr.first")) + get("/v1/admin/events"))
    first = await read_response(reader)
    second = await read_response(reader)
    assert first[0] == 202
    assert second[0] == 400 and second[1]["connection"] == "close"
    assert json.loads(second[2])["error"]["code"] == "bad_request"
    assert await closed_by_server(reader)
    assert [e["event"] for e in await stored(hub)] == ["pr.first"]


async def test_a_hand_over_waits_for_the_answers_owed_first(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A GET sent in a later packet than an ingest still committing: the ingest's answer comes first."""
    assert hub.daemon.runtime is not None
    ingest = hub.daemon.runtime.ingest
    commit, release = ingest.accept, asyncio.Event()

    async def held(*args: Any) -> Any:
        await release.wait()
        return await commit(*args)

    monkeypatch.setattr(ingest, "accept", held)
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(post(event("pr.slow")))
    await asyncio.sleep(0.1)
    writer.write(get("/health"))
    await asyncio.sleep(0.1)
    release.set()
    first = await read_response(reader)
    second = await read_response(reader)
    assert first[0] == 202 and json.loads(first[2])["event"] == "pr.slow"
    assert second[0] == 200 and by_aiohttp(second[1])


async def test_a_body_over_the_limit_is_refused_before_it_is_read_and_nothing_is_stored(hub: Hub) -> None:
    limit = hub.daemon.config.settings.server.max_body_bytes
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nx-api-key: " + PRODUCER.encode()
                 + b"\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
    status, headers, body = await read_response(reader)
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["error"] == {"code": "too_large", "message": f"request body is larger than {limit} bytes"}
    assert await closed_by_server(reader)
    # chunked, so the size shows only as it arrives
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nx-api-key: " + PRODUCER.encode()
                 + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(limit // 65536 + 2):
        writer.write(b"10000\r\n" + b" " * 65536 + b"\r\n")
    status, _, body = await read_response(reader)
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"
    assert await closed_by_server(reader)
    assert await stored(hub) == []


async def test_connection_close_and_a_half_close_are_honoured(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(post(event("pr.last"), extra="Connection: close\r\n"))
    status, headers, _ = await read_response(reader)
    assert status == 202 and headers["connection"] == "close"
    assert await closed_by_server(reader)

    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(post(event("pr.halfclosed")))
    writer.write_eof()  # the client is done sending; the answer it is owed still comes
    status, _, body = await read_response(reader)
    assert status == 202 and json.loads(body)["event"] == "pr.halfclosed"


async def test_a_client_that_does_not_read_is_not_read_further_and_loses_nothing(hub: Hub) -> None:
    count = MAX_PIPELINED * 3
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(b"".join(post(event(), extra=f"x-n: {i}\r\n") for i in range(count)))
    await asyncio.sleep(0.3)  # the front stops reading at MAX_PIPELINED owed answers until they are read
    answers = [await read_response(reader) for _ in range(count)]
    assert [status for status, _, _ in answers] == [202] * count
    writer.close()
    assert (await hub.call("GET", f"/v1/admin/events?limit={count}"))[1]["events"].__len__() == count


async def via_aiohttp(hub: Hub, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    """The same request on aiohttp's path: a gzip body is never plain ingest."""
    async with hub.session.post(hub.base + "/v1/events", data=gzip.compress(body),
                                headers={"Content-Encoding": "gzip", **headers}) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, await response.json()


def without_ids(answer: Any) -> Any:
    if isinstance(answer, dict):
        return {k: without_ids(v) for k, v in answer.items() if k != "id"}
    if isinstance(answer, list):
        return [without_ids(v) for v in answer]
    return answer


@pytest.mark.parametrize(("body", "headers"), [
    (event(), {}),  # no key
    (event(), {"x-api-key": "alertd_not_a_key"}),
    (event(), {"Authorization": "Bearer " + PRODUCER}),
    (event(), {"Authorization": "Basic " + PRODUCER}),
    (event("ops.outside.scope"), {"x-api-key": PRODUCER}),
    ('{"event": "pr.x", "payload": [1]}', {"x-api-key": PRODUCER}),
    ('{"event": "pr.x", "payload": {"n": 18446744073709551616}}', {"x-api-key": PRODUCER}),
    ("not json", {"x-api-key": PRODUCER}),
    ("", {"x-api-key": PRODUCER}),
    ("[" + ",".join([event()] * 2) + "]", {"x-api-key": PRODUCER}),
    ("[]", {"x-api-key": PRODUCER}),
    ('{"event": "pr.deep", "payload": {"a": ' + "[" * 40 + "]" * 40 + "}}", {"x-api-key": PRODUCER}),
    (event("pr.idem", idempotency_key="same"), {"x-api-key": PRODUCER}),
])
async def test_the_front_answers_exactly_as_the_aiohttp_route(hub: Hub, body: str, headers: dict[str, str]) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    data = body.encode()
    writer.write(f"POST /v1/events HTTP/1.1\r\nHost: a\r\n{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
    status, front_headers, answer = await read_response(reader)
    assert not by_aiohttp(front_headers)
    aio_status, aio_headers, aio_answer = await via_aiohttp(hub, data, headers)
    if "idempotency_key" in body:  # and once more on the front: the duplicate's answer, both ways
        writer.write(f"POST /v1/events HTTP/1.1\r\nHost: a\r\n{head}Content-Length: {len(data)}\r\n\r\n".encode()
                     + data)
        status, front_headers, answer = await read_response(reader)
        assert status == aio_status == 200
    assert status == aio_status
    assert without_ids(json.loads(answer)) == without_ids(aio_answer)
    for name in ("www-authenticate", "retry-after", "content-type"):
        assert front_headers.get(name) == aio_headers.get(name), name


async def test_a_key_header_that_is_not_utf8_is_an_unknown_key(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    data = event().encode()
    writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nx-api-key: \xff\xfe" + PRODUCER.encode()
                 + b"\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    status, headers, body = await read_response(reader)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert PRODUCER.encode() not in body
    writer.close()


async def test_while_stopping_ingest_is_a_503_with_retry_after(hub: Hub) -> None:
    assert hub.daemon.runtime is not None
    hub.daemon.runtime.accepting = False
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(post(event()))
    status, headers, body = await read_response(reader)
    assert status == 503 and headers["retry-after"] == "5"
    assert json.loads(body)["error"]["code"] == "shutting_down"
    writer.close()
    hub.daemon.runtime.accepting = True


@pytest.fixture
async def idle_front(hub: Hub) -> AsyncIterator[int]:
    """A second listener with a 0.2 s keep-alive timeout, in front of the hub's runtime."""
    daemon = hub.daemon
    assert daemon.runtime is not None and daemon.runner is not None and daemon.runner.server is not None
    front = Front(daemon.runtime, daemon.runner.server, 1024, keepalive_timeout=0.2)
    server = await asyncio.get_running_loop().create_server(front, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await front.close(1.0)


async def test_idle_and_stalled_connections_are_closed_after_the_keepalive_timeout(idle_front: int) -> None:
    idle_reader, _ = await connect(idle_front)  # sends nothing at all
    stalled_reader, stalled_writer = await connect(idle_front)
    stalled_writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Le")  # and never finishes
    assert await closed_by_server(idle_reader, 3.0)
    assert await closed_by_server(stalled_reader, 3.0)


async def test_stop_closes_the_front_connections_after_their_answers(tmp_path: Path) -> None:
    async with running_hub(tmp_path, "") as hub:  # the test stops the daemon itself; a second stop is a no-op
        daemon = hub.daemon
        idle_reader, idle_writer = await connect(daemon.bound_port)
        idle_writer.write(post(event("pr.kept")))
        assert (await read_response(idle_reader))[0] == 202  # now idle, kept alive
        await daemon.stop()
        assert await closed_by_server(idle_reader, 3.0)
        with pytest.raises(OSError):
            await connect(daemon.bound_port)  # and nothing listens any more


async def test_a_head_that_never_ends_is_aiohttps_to_refuse_not_held_in_memory(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nX-Big: ")
    with contextlib.suppress(ConnectionError):
        for _ in range(8):  # 512 KiB of one header value, and never its end
            writer.write(b"a" * 65536)
            await writer.drain()
    status, headers, body = await read_response(reader)
    assert status == 400 and by_aiohttp(headers) and b"could not be read as HTTP" in body


async def test_trailers_are_not_headers(hub: Hub) -> None:
    """A chunked body's trailers neither authenticate nor change how the request is read (as aiohttp)."""
    body = event("pr.trailed").encode()
    chunked = b"%x\r\n%s\r\n0\r\n" % (len(body), body)
    for key_header, trailer, expected in ((b"", b"x-api-key: " + PRODUCER.encode() + b"\r\n", 401),
                                          (b"x-api-key: " + PRODUCER.encode() + b"\r\n", b"Expect: nothing\r\n", 202)):
        reader, writer = await connect(hub.daemon.bound_port)
        writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\n" + key_header + b"Transfer-Encoding: chunked\r\n\r\n"
                     + chunked + trailer + b"\r\n")
        status, headers, _ = await read_response(reader)
        assert status == expected and not by_aiohttp(headers)


@pytest.mark.parametrize("head", [
    b"POST /v1/events HTTP/1.1\r\n",  # no Host
    b"POST /v1/events HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Range: bytes 0-1/2\r\nContent-Range: bytes 0-1/2\r\n",
])
async def test_a_head_aiohttp_refuses_is_refused_by_aiohttp(hub: Hub, head: bytes) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    data = event().encode()
    writer.write(head + b"x-api-key: " + PRODUCER.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
    status, headers, _ = await read_response(reader)
    assert status == 400 and by_aiohttp(headers)
    assert await stored(hub) == []


async def test_a_body_over_the_limit_without_a_key_is_a_401_first(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert b"262144" not in body  # the limit is not told to whoever has no key


async def test_a_request_arriving_slowly_is_not_idle(idle_front: int) -> None:
    reader, writer = await connect(idle_front)
    data = event("pr.slowly").encode()
    writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nx-api-key: " + PRODUCER.encode()
                 + b"\r\nContent-Length: %d\r\n\r\n" % len(data))
    for start in range(0, len(data), 8):  # 0.1 s between parts, 0.2 s keep-alive timeout, ~0.8 s in all
        await asyncio.sleep(0.1)
        writer.write(data[start:start + 8])
    status, _, body = await read_response(reader)
    assert status == 202 and json.loads(body)["event"] == "pr.slowly"


async def test_stop_does_not_wait_for_a_request_still_arriving(tmp_path: Path) -> None:
    async with running_hub(tmp_path, "") as hub:
        daemon = hub.daemon
        reader, writer = await connect(daemon.bound_port)
        writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{")  # never finished
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        await daemon.stop()
        assert asyncio.get_running_loop().time() - started < 1.0
        assert await closed_by_server(reader, 3.0)


async def test_a_head_trickling_in_is_idle(idle_front: int) -> None:
    reader, writer = await connect(idle_front)
    with contextlib.suppress(ConnectionError):
        for byte in b"POST /v1/events HTTP/1.1\r\nHost: a\r\n":  # a byte every 0.1 s, 0.2 s keep-alive timeout
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)
            if reader.at_eof():
                break
    assert await closed_by_server(reader, 3.0)


def chunked(body: bytes, size: int, trailers: bytes = b"") -> bytes:
    parts = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size))
    return (b"POST /v1/events HTTP/1.1\r\nHost: a\r\nx-api-key: " + PRODUCER.encode()
            + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + parts + b"0\r\n" + trailers + b"\r\n")


async def test_trailers_are_held_to_aiohttps_header_rules(hub: Hub) -> None:
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(chunked(event("pr.t").encode(), 1000, b"Content-Type: a\r\nContent-Type: b\r\n"))
    status, _, body = await read_response(reader)
    assert status == 400 and b"could not be read as HTTP" in body
    assert await stored(hub) == []


async def test_a_body_in_tiny_chunks_within_the_limit_is_accepted(hub: Hub) -> None:
    limit = hub.daemon.config.settings.server.max_body_bytes
    body = json.dumps({"event": "pr.tiny", "payload": {"pad": "x" * (limit - 200)}}).encode()
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(chunked(body, 16))  # framing alone is over a third of the body
    status, _, answer = await read_response(reader)
    assert status == 202 and json.loads(answer)["event"] == "pr.tiny"


async def test_a_refusal_and_a_broken_chunk_in_one_read_answer_once(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    limit = hub.daemon.config.settings.server.max_body_bytes
    reader, writer = await connect(hub.daemon.bound_port)
    writer.write(b"POST /v1/events HTTP/1.1\r\nHost: a\r\nx-api-key: " + PRODUCER.encode()
                 + b"\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (limit + 1) + b" " * (limit + 1)
                 + b"\r\nnot a chunk size\r\n")
    status, _, _ = await read_response(reader)
    assert status == 413
    assert await closed_by_server(reader)
    assert not [r for r in caplog.records if "Fatal error" in r.getMessage()]


async def test_a_keys_rate_counts_pipelined_requests_in_their_order(tmp_path: Path) -> None:
    extra = '[[keys]]\nname = "rated"\nkey = "rated-key-for-front-tests-0001"\nevents = ["*"]\nrate = "1/h"\n'
    async with running_hub(tmp_path, extra) as hub:
        reader, writer = await connect(hub.daemon.bound_port)
        oversized = (b"POST /v1/events HTTP/1.1\r\nHost: a\r\nx-api-key: rated-key-for-front-tests-0001\r\n"
                     b"Content-Length: 99999999\r\n\r\n")
        writer.write(post(event("pr.first"), key="rated-key-for-front-tests-0001") + oversized)
        assert (await read_response(reader))[0] == 202  # the first request had the key's one token
        assert (await read_response(reader))[0] == 429
