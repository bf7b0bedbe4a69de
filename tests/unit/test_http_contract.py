"""One table of receiver answers → classification, run through the shared HTTP helper against a real
local server (every HTTP channel inherits this)."""

import asyncio

import aiohttp
import pytest
from aiohttp import web

from alertd.channels.base import HttpSender, PermanentError, RetryableError
from alertd.channels.webhook import WebhookChannel, WebhookConfig
from alertd.model import Event, Message, Severity
from alertd.netguard import NetPolicy, make_connector

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
async def receiver():
    behaviour: dict[str, web.StreamResponse | None] = {}
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        await request.read()
        mode = request.path.strip("/")
        if mode == "hang":
            await asyncio.sleep(1.5)
        if mode == "endless":
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            for _ in range(2000):
                await response.write(b"x" * 1024)
            return response
        status, _, extra = mode.partition("-")
        headers = {"Retry-After": extra} if extra else {}
        if status.startswith("3"):
            headers["Location"] = "http://127.0.0.1:1/elsewhere"
        return web.Response(status=int(status), text=f"answer {status} secret={SECRET}", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen, behaviour
    await runner.cleanup()


@pytest.fixture
async def http():
    policy = NetPolicy.from_strings(["127.0.0.0/8"])
    session = aiohttp.ClientSession(connector=make_connector(policy))
    sender = HttpSender(session, policy)
    yield sender
    await sender.close()
    await session.close()


def channel(http: HttpSender, url: str, **extra) -> WebhookChannel:
    config = WebhookConfig(name="hook", url=url, signing="standard", secret=SECRET, timeout="1s", **extra)
    return WebhookChannel(config, http)


MESSAGE = Message(Event("evt_01J0000000000000000000000A", "pr.run.failed", Severity.ERROR, {"a": 1}, 0.0),
                  delivery_id=7, attempt=1, title="t", summary="s")


@pytest.mark.parametrize(("path", "kind", "status", "retry_after"), [
    ("500", RetryableError, 500, None),
    ("502", RetryableError, 502, None),
    ("503-30", RetryableError, 503, 30.0),
    ("429-7", RetryableError, 429, 7.0),
    ("429", RetryableError, 429, None),
    ("408", RetryableError, 408, None),
    ("400", PermanentError, 400, None),
    ("401", PermanentError, 401, None),
    ("404", PermanentError, 404, None),
    ("410", PermanentError, 410, None),
    ("302", PermanentError, 302, None),
    ("301", PermanentError, 301, None),
])
async def test_receiver_answers_are_classified(receiver, http, path, kind, status, retry_after):
    base, seen, _ = receiver
    with pytest.raises(kind) as caught:
        await channel(http, f"{base}/{path}").send(MESSAGE)
    assert caught.value.status == status
    if retry_after is not None:
        assert caught.value.retry_after == retry_after
    assert SECRET not in str(caught.value)
    if status not in (301, 302):
        assert "****" in str(caught.value)  # the body echoed the secret; the stored error masks it
    assert len(seen) == 1  # a redirect is never followed


async def test_410_marks_the_receiver_as_gone(receiver, http):
    with pytest.raises(PermanentError) as caught:
        await channel(http, f"{receiver[0]}/410").send(MESSAGE)
    assert caught.value.gone


async def test_2xx_is_success(receiver, http):
    outcome = await channel(http, f"{receiver[0]}/204").send(MESSAGE)
    assert outcome.status == 204


async def test_a_hanging_receiver_times_out_as_retryable(receiver, http):
    with pytest.raises(RetryableError, match="timed out"):
        await channel(http, f"{receiver[0]}/hang").send(MESSAGE)


async def test_an_endless_body_is_cut_at_the_prefix(receiver, http):
    outcome = await channel(http, f"{receiver[0]}/endless").send(MESSAGE)
    assert outcome.status == 200


async def test_connection_refused_is_retryable(http):
    with pytest.raises(RetryableError, match="connection failed"):
        await channel(http, "http://127.0.0.1:1/x").send(MESSAGE)


async def test_a_private_target_outside_the_allow_list_is_permanent():
    policy = NetPolicy.from_strings([])
    async with aiohttp.ClientSession(connector=make_connector(policy)) as session:
        hook = channel(HttpSender(session, policy), "http://127.0.0.1:1/x")
        with pytest.raises(PermanentError, match="outbound URL policy"):
            await hook.send(MESSAGE)


async def test_the_url_path_never_appears_in_an_error(http):
    hook = channel(http, "http://127.0.0.1:1/T000/B000/very-secret-path-token")
    with pytest.raises(RetryableError) as caught:
        await hook.send(MESSAGE)
    assert "very-secret-path-token" not in str(caught.value)


async def test_the_request_is_a_signed_json_post(receiver, http):
    base, seen, _ = receiver
    await channel(http, f"{base}/200", headers={"X-Team": "ops"}).send(MESSAGE)
    request = seen[0]
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "msg_01J0000000000000000000000A_7"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["X-Team"] == "ops"


@pytest.mark.parametrize("headers", [{"Content-Length": "1"}, {"webhook-signature": "v1,forged"},
                                     {"Bad Name": "x"}, {"X-A": "a\r\nInjected: 1"}])
def test_config_cannot_forge_owned_or_broken_headers(headers):
    with pytest.raises(ValueError, match="header"):
        WebhookConfig(name="h", url="http://127.0.0.1/", headers=headers)


@pytest.mark.parametrize("name", ["User-Agent", "user-agent", "USER-AGENT"])
async def test_a_configured_user_agent_replaces_alertds_in_any_case(http, receiver, name):
    base, seen, _ = receiver
    hook = channel(http, f"{base}/200", headers={name: "ci-bot/1"})
    await hook.send(MESSAGE)
    assert seen[-1].headers.getall("User-Agent") == ["ci-bot/1"]


async def test_alertds_user_agent_when_none_is_configured(http, receiver):
    base, seen, _ = receiver
    await channel(http, f"{base}/200").send(MESSAGE)
    assert seen[-1].headers.getall("User-Agent") == ["alertd"]
