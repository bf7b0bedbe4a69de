"""sd_notify against real datagram sockets standing in for systemd: a path socket and an abstract one."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertd import sdnotify


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        yield sock


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"alertd-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield sock


@pytest.fixture(autouse=True)
def no_watchdog_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def received(sock: socket.socket) -> bytes:
    return sock.recv(4096)


def test_it_sends_ready_to_a_path_socket(path_socket: socket.socket) -> None:
    assert sdnotify.ready() is True
    assert received(path_socket) == b"READY=1"


def test_it_sends_to_an_abstract_socket(abstract_socket: socket.socket) -> None:
    assert sdnotify.ready() is True
    assert received(abstract_socket) == b"READY=1"


def test_each_helper_sends_its_assignment(path_socket: socket.socket) -> None:
    assert sdnotify.stopping() and sdnotify.watchdog() and sdnotify.status("draining")
    assert sdnotify.notify("EXTEND_TIMEOUT_USEC=5000000")
    assert [received(path_socket) for _ in range(4)] == [
        b"STOPPING=1", b"WATCHDOG=1", b"STATUS=draining", b"EXTEND_TIMEOUT_USEC=5000000"]


def test_ready_and_stopping_can_carry_a_status_in_the_same_datagram(abstract_socket: socket.socket) -> None:
    sdnotify.ready(status="listening on 127.0.0.1:8040; 3 channels")
    sdnotify.stopping(status="draining for up to 10s")
    assert received(abstract_socket) == b"READY=1\nSTATUS=listening on 127.0.0.1:8040; 3 channels"
    assert received(abstract_socket) == b"STOPPING=1\nSTATUS=draining for up to 10s"


def test_a_status_cannot_smuggle_another_assignment(path_socket: socket.socket) -> None:
    sdnotify.status("reload rejected:\nREADY=1\r\nMAINPID=1")
    assert received(path_socket) == b"STATUS=reload rejected: READY=1 MAINPID=1"


def test_without_notify_socket_it_does_nothing() -> None:
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.ready() is False
    assert sdnotify.watchdog() is False


@pytest.mark.parametrize("value", ["", "relative/notify.sock", "vsock:2:1234"])
def test_an_address_it_cannot_speak_to_is_a_no_op(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert sdnotify.ready() is False


def test_a_socket_nobody_listens_on_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sdnotify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", f"@alertd-test-nobody-{secrets.token_hex(8)}")
    assert sdnotify.ready() is False


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    ("30000000", None, 30.0),
    ("200000", "self", 0.2),
    ("200000", "1", None),  # systemd meant another process
    ("200000", "not-a-pid", None),
    ("0", None, None),
    ("-5", None, None),
    ("soon", None, None),
    (None, None, None),
])
def test_watchdog_interval_reads_the_environment(monkeypatch: pytest.MonkeyPatch, usec: str | None,
                                                 pid: str | None, expected: float | None) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert sdnotify.watchdog_interval() == expected


async def test_the_watchdog_pings_every_half_interval(path_socket: socket.socket,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    dog = sdnotify.Watchdog()
    assert (dog.interval, dog.period) == (0.2, 0.1)
    path_socket.setblocking(False)
    loop = asyncio.get_running_loop()
    assert dog.start() is True
    try:
        pings = [await asyncio.wait_for(loop.sock_recv(path_socket, 64), 0.5) for _ in range(3)]
    finally:
        await dog.stop()
    assert pings == [b"WATCHDOG=1"] * 3  # the first at once, then one per period


async def test_the_watchdog_stays_off_when_systemd_does_not_ask(path_socket: socket.socket) -> None:
    dog = sdnotify.Watchdog()
    assert dog.start() is False
    await dog.stop()
    path_socket.setblocking(False)
    with pytest.raises(BlockingIOError):
        path_socket.recv(64)


async def test_a_stopped_watchdog_sends_no_more(path_socket: socket.socket) -> None:
    dog = sdnotify.Watchdog(interval=0.02)
    assert dog.start() is True
    path_socket.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_recv(path_socket, 64), 0.5)
    await dog.stop()
    while True:  # drain what was sent before the stop
        try:
            path_socket.recv(64)
        except BlockingIOError:
            break
    await asyncio.sleep(0.05)
    with pytest.raises(BlockingIOError):
        path_socket.recv(64)
