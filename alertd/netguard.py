"""Outbound URL policy against SSRF.

Three layers, because aiohttp consults a resolver only for hostnames:
- `validate_url` refuses bad schemes and disallowed IP literals (aiohttp never calls a resolver for an
  IP literal host);
- `GuardedResolver` checks every address a hostname resolves to, at delivery time, and aiohttp connects
  to exactly the addresses it returned, so a name cannot be re-pointed between check and connect;
- `make_connector` also checks the address each socket is about to connect to, as a backstop for paths
  that skip `validate_url` (a followed redirect to an IP literal, a caller that forgot).
An address is allowed if it is public, or inside a network of `net.allow_private`.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]

_SCHEMES = frozenset({"http", "https"})
_NAT64 = IPv6Network("64:ff9b::/96")
_LEGACY_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


class BlockedTarget(Exception):
    """Refused by the outbound policy. The message is safe to store and log: it never holds URL userinfo,
    path or query string."""


class BlockedConnection(BlockedTarget, OSError):
    """Raised by the connector's socket backstop. It must be an OSError: aiohttp (and happy eyeballs)
    only let OSErrors out of a connect attempt, so callers see it as the `os_error` / `__cause__` of an
    aiohttp.ClientConnectorError."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)

    def __str__(self) -> str:
        return str(self.strerror)


def _embedded_ipv4(addr: IPv6Address) -> IPv4Address | None:
    # Packets to these forms end up at (or are translated to) the embedded IPv4 address.
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return IPv4Address(int(addr) & 0xFFFF_FFFF)
    return None


def _is_public(addr: IPAddress) -> bool:
    # is_global alone is not enough: Python 3.11 calls multicast global, and IPv6 fec0::/10 (site-local)
    # is in none of its private tables.
    if addr.is_multicast or addr.is_reserved or addr.is_private or addr.is_loopback:
        return False
    if addr.is_link_local or addr.is_unspecified:
        return False
    return addr.is_global and not (isinstance(addr, IPv6Address) and addr.is_site_local)


def _parse_address(ip: str | IPAddress) -> IPAddress | None:
    if isinstance(ip, IPv4Address | IPv6Address):
        return ip
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


@dataclass(frozen=True)
class NetPolicy:
    allow_private: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_strings(cls, nets: Iterable[str]) -> NetPolicy:
        networks = []
        for net in nets:
            try:
                # strict=False matches the config validator (alertd.config.NetSettings): host bits are
                # ignored, "10.0.0.1/8" means 10.0.0.0/8.
                networks.append(ipaddress.ip_network(net.strip(), strict=False))
            except ValueError:
                raise ValueError(f"net.allow_private: {net[:60]!r} is not a network in CIDR form "
                                 "(e.g. 127.0.0.0/8)") from None
        return cls(tuple(networks))

    def _listed(self, addr: IPAddress) -> bool:
        return any(addr in net for net in self.allow_private)

    def address_allowed(self, ip: str | IPAddress) -> bool:
        """False for anything that is not an IP address."""
        addr = _parse_address(ip)
        if addr is None:
            return False
        if self._listed(addr):
            return True
        if isinstance(addr, IPv6Address):
            embedded = _embedded_ipv4(addr)
            if embedded is not None:
                return self._listed(embedded) or _is_public(embedded)
        return _is_public(addr)


def _legacy_ipv4_int(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part, 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8)
    return int(part)


def legacy_ipv4(host: str) -> IPv4Address | None:
    """inet_aton's reading of a host ("127.1", "0x7f.1", "017700000001", "2130706433"), else None: one to
    four parts, each decimal, 0x-hex or 0-octal, the last part filling all the remaining bytes."""
    if len(host) > 253:  # not a valid name either; and int() refuses very long digit strings
        return None
    parts = host.split(".")
    if len(parts) > 4 or not all(_LEGACY_IPV4_PART.fullmatch(part) for part in parts):
        return None
    *head, last = (_legacy_ipv4_int(part) for part in parts)
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = last
    for index, byte in enumerate(head):
        value |= byte << (24 - 8 * index)
    return IPv4Address(value)


def _host_literal(host: str) -> IPAddress | None:
    # One trailing dot is how a fully-qualified name is written; it must not hide a literal.
    bare = host.removesuffix(".")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return legacy_ipv4(bare)


def _origin(url: URL) -> str:
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    port = "" if url.explicit_port is None else f":{url.explicit_port}"
    return f"{url.scheme}://{host}{port}"


def validate_url(url: str | URL, policy: NetPolicy) -> URL:
    """The URL, parsed, if it may be requested; BlockedTarget otherwise. Hostnames pass: GuardedResolver
    checks what they resolve to when the request is made."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        host = parsed.host  # decoded lazily: a bad IDNA label ("xn--") fails only here
    except (ValueError, TypeError):
        raise BlockedTarget("the URL cannot be parsed") from None
    if parsed.scheme not in _SCHEMES:
        raise BlockedTarget(f"scheme {parsed.scheme[:20]!r} is not allowed: use http or https")
    if not host:
        raise BlockedTarget("the URL has no host")
    literal = _host_literal(host)
    if literal is not None and not policy.address_allowed(literal):
        raise BlockedTarget(f"{_origin(parsed)} is refused: {literal} is not a public address "
                            "and is not in net.allow_private")
    return parsed


class GuardedResolver(AbstractResolver):
    """Resolves through `inner`, then refuses the whole name if any address is not allowed: silently
    dropping the bad ones would let a name that mixes public and internal answers through."""

    def __init__(self, policy: NetPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._inner is None:
            # Made on first use: ThreadedResolver needs a running loop, constructing a policy object must not.
            self._inner = aiohttp.ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not self._policy.address_allowed(result["host"]):
                raise BlockedTarget(f"{host[:253]!r} resolves to {result['host']}, which is not a public "
                                    "address and is not in net.allow_private")
        if not results:
            # aiohttp fails with a bare AssertionError on an empty answer; a DNS error is what this is.
            raise socket.gaierror(socket.EAI_NONAME, f"{host[:253]!r} resolved to no address")
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def check_connect(policy: NetPolicy, address: str) -> None:
    """The connect-time backstop, for aiohttp's connector and the webhook client (channels/wire.py) alike: the
    resolver refuses such names whole, so this fires only if an address got past it."""
    if not policy.address_allowed(address):
        raise BlockedConnection(f"connection to {address} refused: not a public address and not in "
                                "net.allow_private")


def _guarded_socket_factory(policy: NetPolicy) -> Callable[[AddrInfo], socket.socket]:
    def factory(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, address = addr_info
        check_connect(policy, address[0])
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


def make_connector(policy: NetPolicy, *, inner: AbstractResolver | None = None,
                   **kw: Any) -> aiohttp.TCPConnector:
    """Call with a running loop. `inner` is the name service GuardedResolver asks (default: threaded
    getaddrinfo). `resolver` and `socket_factory` are the guard, so passing either is a TypeError, on
    purpose. The DNS cache (use_dns_cache, on by default) is kept: it is filled only from GuardedResolver's
    answers, so every cached address has been checked."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(policy, inner),
                                socket_factory=_guarded_socket_factory(policy), **kw)


def redact_url(url: str | URL) -> str:
    """scheme://host[:port]/path for logs and rows: no userinfo, no fragment, a query string as "?…".
    Never raises."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        text = f"{_origin(parsed)}{parsed.raw_path}" if parsed.scheme else parsed.raw_path
        return f"{text}?…" if parsed.raw_query_string else text
    except Exception:  # a log line must never fail because of the URL in it
        return "<unparseable URL>"
