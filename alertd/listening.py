"""The listening sockets, bound before anything else starts: a port in use (a second `alertd serve` on the
same config, an address not up yet at boot) must fail start-up before a single delivery goes out."""

from __future__ import annotations

import socket

BACKLOG = 1024


class ListenError(Exception):
    """alertd cannot listen where it was told to: one line for stderr."""


def bind_listen(host: str, port: int, backlog: int = BACKLOG) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address `host` resolves to, set up as asyncio's own
    create_server does (SO_REUSEADDR; IPv6 sockets IPv6-only, so a v4 and a v6 address can share a port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host[:60]}:{port}: {exc.strerror or exc}") from None
    except UnicodeError:
        # the idna codec refuses a name it cannot encode (a label over 63 letters, an empty one: "..")
        raise ListenError(f"cannot listen on {host[:60]!r}:{port}: not a valid host name") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, address in dict.fromkeys((i[0], i[1], i[2], i[4]) for i in infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(f"cannot listen on {host[:60]}:{port}: {exc.strerror or exc}") from None
    return sockets
