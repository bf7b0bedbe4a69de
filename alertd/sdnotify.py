"""systemd's notify protocol (sd_notify(3)): newline-separated KEY=VALUE lines in one datagram to
$NOTIFY_SOCKET. Outside systemd the variable is absent and every call is a no-op. Nothing here raises or
logs: telling systemd how we are is never worth failing over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

SEND_TIMEOUT_S = 1.0  # PID 1 reads its socket promptly; bound the wait if it ever does not


def notify(state: str) -> bool:
    """Sends `state` (e.g. "READY=1"); True if the datagram went out."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # neither a path nor abstract (e.g. vsock:, systemd ≥ 253): not spoken here
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.connect(address)
            sock.sendall(state.encode())
    except (OSError, UnicodeError):
        return False
    return True


def _status_line(text: str) -> str:
    # One line: a newline in `text` would start another assignment (say, READY=1) of its own.
    return "STATUS=" + " ".join(text.splitlines())


def ready(status: str | None = None) -> bool:
    return notify("READY=1" + ("\n" + _status_line(status) if status else ""))


def stopping(status: str | None = None) -> bool:
    return notify("STOPPING=1" + ("\n" + _status_line(status) if status else ""))


def status(text: str) -> bool:
    return notify(_status_line(text))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """WatchdogSec= in seconds, if systemd expects pings from this process."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None  # meant for another process: we inherited the variable
    if not (usec.isascii() and usec.isdigit()) or int(usec) <= 0:
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """Pings every half interval from the event loop: if the loop wedges, the pings stop and systemd
    restarts the service (WatchdogSec=, Restart=on-failure)."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval if interval is not None else watchdog_interval()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> bool:
        """Starts pinging if systemd asked for it; returns whether it did."""
        if self.interval is None or self._task is not None:
            return False
        self._task = asyncio.get_running_loop().create_task(self._ping(), name="sd-watchdog")
        return True

    @property
    def period(self) -> float | None:
        """Half the interval, as sd_watchdog_enabled(3) advises: one late ping is not yet a restart."""
        return self.interval / 2 if self.interval is not None else None

    async def _ping(self) -> None:
        assert self.period is not None
        while True:
            watchdog()
            await asyncio.sleep(self.period)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
