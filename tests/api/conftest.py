"""The daemon in-process (real store, real HTTP on 127.0.0.1, real local receiver) for API-level tests:
faster than a subprocess, same code paths. Subprocess tests live in tests/integration."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alertd.config import load_config
from alertd.daemon import Daemon

ADMIN = "admin-key-for-api-tests-0123"
PRODUCER = "producer-key-for-api-tests-01"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Hub:
    def __init__(self, daemon: Daemon, session: aiohttp.ClientSession, received: list[bytes],
                 receiver_url: str, config_path: Path) -> None:
        self.daemon = daemon
        self.session = session
        self.received = received
        self.receiver_url = receiver_url
        self.config_path = config_path
        self.base = f"http://127.0.0.1:{daemon.bound_port}"

    async def call(self, method: str, path: str, body: Any = None, *, key: str = ADMIN,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, json=body,
                                        headers={"x-api-key": key, **(headers or {})}) as response:
            return response.status, await response.json()

    async def until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await predicate():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("condition never held")


def config_text(tmp_path: Path, receiver_url: str, extra: str = "") -> str:
    return f"""
admin_key = "{ADMIN}"
[server]
listen = "127.0.0.1:0"
[storage]
path = "{tmp_path / 'api.db'}"
synchronous = "normal"
[net]
allow_private = ["127.0.0.0/8"]
[dispatch]
backoff_base = "10ms"
backoff_cap = "50ms"
max_attempts = 2
[log]
level = "error"
[[keys]]
name = "producer"
key = "{PRODUCER}"
events = ["pr.*", "deploy.*"]
[[channels]]
name = "hook"
type = "webhook"
url = "{receiver_url}/hook"
signing = "standard"
secret = "{SECRET}"
timeout = "2s"
[[routes]]
name = "pr"
match = "pr.*"
channels = ["hook"]
[[events]]
name = "pr.run.failed"
default_severity = "error"
description = "a CI run failed"
{extra}
"""


async def start_receiver(receive: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> tuple[web.AppRunner, str]:
    """A local HTTP receiver answering every POST with `receive`: its runner (to clean up) and base URL."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    received: list[bytes] = []
    status = {"code": 200}

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=status["code"])

    runner, receiver_url = await start_receiver(receive)
    path = tmp_path / "alertd.toml"
    path.write_text(config_text(tmp_path, receiver_url))
    daemon = Daemon(load_config(path))
    await daemon.start()
    async with aiohttp.ClientSession() as session:
        h = Hub(daemon, session, received, receiver_url, path)
        h.receiver_status = status  # type: ignore[attr-defined]
        yield h
    await daemon.stop()
    await runner.cleanup()


# ---- storm control (silences, dedup windows) ----------------------------------------------------

STORM_EXTRA = """
[[routes]]
name = "cues"
match = "cue.*"
channels = ["hook"]
suppress_for = "5m"
dedup_key = "{event}:{payload.cue_id}"
[[routes]]
name = "deploys"
match = "deploy.*"
channels = ["hook"]
"""

CONFIG_SILENCE = """
[[silences]]
event = "deploy.canary.*"
duration = "1h"
comment = "canaries are noisy this week"
"""


@contextlib.asynccontextmanager
async def running_hub(tmp_path: Path, extra: str) -> AsyncIterator[Hub]:
    """Like the `hub` fixture, with `extra` appended to the TOML."""
    received: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=200)

    runner, receiver_url = await start_receiver(receive)
    path = tmp_path / "alertd.toml"
    path.write_text(config_text(tmp_path, receiver_url, extra))
    daemon = Daemon(load_config(path))
    await daemon.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Hub(daemon, session, received, receiver_url, path)
    finally:
        await daemon.stop()
        await runner.cleanup()


def silences_wired() -> bool:
    from alertd.api.state import Runtime
    from alertd.config import Settings

    return "silences" in Settings.model_fields and "silences" in getattr(Runtime, "__dataclass_fields__", {})


@pytest.fixture
async def storm_hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """The hub plus a dedup-window route (`cues`), a plain `deploys` route and one config silence."""
    if not silences_wired():
        pytest.skip("silences are not wired into config.Settings and api.state.Runtime yet")
    async with running_hub(tmp_path, STORM_EXTRA + CONFIG_SILENCE) as hub:
        yield hub
