"""Start and stop around work in flight: a start that cannot listen sends nothing and leaves nothing
running; a drain waits for the attempts of a channel removed while they were out."""

import asyncio
import contextlib
import socket
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from alertd.config import load_config
from alertd.daemon import Daemon
from alertd.listening import ListenError
from tests.api.conftest import ADMIN, PRODUCER, config_text, start_receiver

LISTEN = 'listen = "127.0.0.1:0"'


def write_config(tmp_path: Path, url: str, listen: str = LISTEN) -> Path:
    path = tmp_path / "alertd.toml"
    path.write_text(config_text(tmp_path, url).replace(LISTEN, f'{listen}\ndrain_timeout = "100ms"'))
    return path


async def post_event(daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{daemon.bound_port}/v1/events", json={"event": "pr.run.failed"},
            headers={"x-api-key": PRODUCER}) as response:
        assert response.status == 202


async def test_a_start_that_cannot_listen_sends_nothing_and_leaves_nothing_running(tmp_path):
    answer = asyncio.Event()  # until set, the receiver holds every request open
    sent_after: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if answer.is_set():
            sent_after.append(body)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answer.wait(), 5)
        return web.Response()

    runner, url = await start_receiver(receive)
    busy = socket.create_server(("127.0.0.1", 0))
    try:
        first = Daemon(load_config(write_config(tmp_path, url)))
        await first.start()
        await post_event(first)
        await asyncio.sleep(0.2)  # the attempt is out, held by the receiver
        await first.stop()  # the drain gives up on it: a pending delivery in the store
        answer.set()
        before = set(asyncio.all_tasks())
        second = Daemon(load_config(write_config(tmp_path, url, f'listen = "127.0.0.1:{busy.getsockname()[1]}"')))
        with pytest.raises(ListenError, match=r"cannot listen on 127\.0\.0\.1:\d+"):
            await second.start()
        await asyncio.sleep(0.3)
        assert sent_after == []  # the backlog did not go out from a daemon that cannot serve
        assert set(asyncio.all_tasks()) <= before  # no lane, scheduler, writer or refill task left behind
        assert second.store._reader is None  # its reader thread is closed: nothing keeps the process alive
        rows = sqlite3.connect(tmp_path / "api.db").execute("SELECT state, attempts FROM deliveries").fetchall()
        assert rows == [("pending", 0)]
    finally:
        busy.close()
        answer.set()
        await runner.cleanup()


async def test_a_drain_waits_for_an_attempt_of_a_channel_removed_while_it_was_out(tmp_path):
    arrived = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        arrived.set()
        await asyncio.sleep(1.0)  # slow, but it answers 200
        return web.Response()

    runner, url = await start_receiver(receive)
    path = tmp_path / "alertd.toml"
    text = config_text(tmp_path, url)
    path.write_text(text)
    daemon = Daemon(load_config(path))
    await daemon.start()
    try:
        await post_event(daemon)
        await asyncio.wait_for(arrived.wait(), 5)
        # the operator drops the channel and its route from the file and reloads, the attempt still out
        path.write_text(text[:text.index("[[channels]]")] + text[text.index("[[events]]"):])
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{daemon.bound_port}/v1/admin/reload", headers={"x-api-key": ADMIN}) as response:
            assert response.status == 200
        assert daemon.runtime.dispatcher.in_flight == 1  # a removed channel's attempt still counts
        started = time.monotonic()
        assert await daemon.runtime.dispatcher.drain(10.0)
        assert time.monotonic() - started > 0.5  # it waited for the answer instead of cutting it off
    finally:
        await daemon.stop()
        await runner.cleanup()
    rows = sqlite3.connect(tmp_path / "api.db").execute(
        "SELECT d.state, a.outcome, a.http_status FROM deliveries d JOIN attempts a ON a.delivery_id = d.id").fetchall()
    assert rows == [("delivered", "delivered", 200)]  # what the receiver answered, recorded once
