"""Shared fixtures for the vendor channels: a real HttpSender (netguard connector, 127.0.0.0/8 allowed), a
local aiohttp server standing in for the vendor, a Message factory with hostile producer text, and the
"no secret leaks" check every channel runs."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alertd.channels.base import BaseChannel, ChannelError, HttpSender
from alertd.model import Event, Message, Severity
from alertd.netguard import NetPolicy, make_connector

EVENT_ID = "evt_01J0000000000000000000000A"
CREATED_AT = 1_700_000_000.0
CREATED_ISO = "2023-11-14T22:13:20.000Z"
LINK = "https://alertd.example/ui/events/evt_01J0000000000000000000000A"
# Everything a producer could try: Slack mentions, Discord mass mentions, HTML, Markdown, a masked link.
HOSTILE = "<!channel> <!here> <@U123> @everyone @here <b>bold</b> **bold** [x](http://evil) & done"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # path and query, as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Vendor:
    """Records every request; answers from a queue of (status, body, headers), then 200 "ok"."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answers: deque[tuple[int, bytes, dict[str, str]]] = field(default_factory=deque)

    def answer(self, status: int, body: bytes | str | dict[str, Any] = b"", **headers: str) -> None:
        if isinstance(body, dict):
            body, headers = json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
        elif isinstance(body, str):
            body = body.encode()
        self.answers.append((status, body, {k.replace("_", "-"): v for k, v in headers.items()}))

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.method, request.path_qs, {k.lower(): v for k, v in request.headers.items()},
                              await request.read()))
        status, body, headers = self.answers.popleft() if self.answers else (200, b"ok", {})
        return web.Response(status=status, body=body, headers=headers)

    @property
    def last(self) -> Seen:
        return self.seen[-1]


@pytest.fixture
async def vendor():
    stand_in = Vendor()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield stand_in
    await runner.cleanup()


@pytest.fixture
async def http():
    policy = NetPolicy.from_strings(["127.0.0.0/8"])
    session = aiohttp.ClientSession(connector=make_connector(policy))
    sender = HttpSender(session, policy)
    yield sender
    await sender.close()
    await session.close()


def make_message(*, title: str = f"[ERROR] deploy.failed {HOSTILE}", summary: str = HOSTILE,
                 fields: tuple[tuple[str, str], ...] = (("who", "<@U123> @everyone"), ("**key**", "a & <b>")),
                 link: str | None = LINK, severity: Severity = Severity.ERROR, name: str = "deploy.failed",
                 payload: dict[str, Any] | None = None) -> Message:
    event = Event(EVENT_ID, name, severity, payload if payload is not None else {"summary": summary}, CREATED_AT)
    return Message(event=event, delivery_id=7, attempt=1, title=title, summary=summary, fields=fields, link=link)


LeakCheck = Callable[[BaseChannel, Vendor, Iterable[str]], Awaitable[None]]


@pytest.fixture
def assert_no_secret_leaks() -> LeakCheck:
    """The vendor fails with a body (and a header) echoing every secret; neither a permanent nor a retryable
    error may carry one in its text."""

    async def check(channel: BaseChannel, vendor: Vendor, secrets: Iterable[str]) -> None:
        secrets = [s for s in secrets if s]
        echo = " ".join(f"secret={s} url={vendor.url}/{s}" for s in secrets)
        for status in (400, 401, 403, 404, 429, 500, 503):
            vendor.answer(status, {"ok": False, "error_code": status, "description": echo, "message": echo,
                                   "errors": [echo]}, X_Echo=secrets[0][:100].replace("\n", ""))
            vendor.answer(status, echo)
            for _ in range(2):
                with pytest.raises(ChannelError) as caught:
                    await channel.send(make_message())
                for secret in secrets:
                    assert secret not in str(caught.value), f"HTTP {status} leaked a secret"

    return check
