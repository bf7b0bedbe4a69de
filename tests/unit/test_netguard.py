"""Only 127.0.0.0/8 is ever connected to; every other name is answered by a fake inner resolver."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_network

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import BaseTestServer, TestServer
from yarl import URL

from alertd.netguard import (
    BlockedTarget,
    GuardedResolver,
    NetPolicy,
    legacy_ipv4,
    make_connector,
    redact_url,
    validate_url,
)

NOTHING = NetPolicy()
LOOPBACK = NetPolicy.from_strings(["127.0.0.0/8"])


class FakeResolver(AbstractResolver):
    """Answers from a script: each call to resolve() takes the next answer."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []
        self.closed = False

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.calls.append(host)
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for address in addresses]

    async def close(self) -> None:
        self.closed = True


async def refused(url: str, policy: NetPolicy, answers: Sequence[str] = ("127.0.0.1",)) -> bool:
    """validate_url, then (as aiohttp would for a hostname) the guarded resolver."""
    try:
        target = validate_url(url, policy)
        assert target.host is not None
        await GuardedResolver(policy, FakeResolver(answers)).resolve(target.host, 80, socket.AF_UNSPEC)
    except BlockedTarget:
        return True
    return False


BYPASSES = [
    "http://127.1/", "http://0/", "http://2130706433/", "http://0x7f.1/", "http://017700000001/",
    "http://0x7f.0.0.1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/",
    "http://[fd00::1]/", "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://0.0.0.0/", "http://[::]/", "http://good@127.0.0.1/", "http://user:pw@127.0.0.1:8080/x?y=1",
    "http://127.0.0.1./", "http://[fe80::1]/", "http://[fe80::1%25eth0]/", "http://224.0.0.1/",
    "http://255.255.255.255/", "http://[2002:7f00:1::1]/", "http://[64:ff9b::7f00:1]/",
    "https://１２７.０.０.１/", "HTTP://127.0.0.1/", "http://localhost/", "ftp://example.com/",
    "file:///etc/passwd", "http:///nohost", "gopher://127.0.0.1:25/", "javascript:alert(1)", "http://[::1",
    "http://xn--/",
]


@pytest.mark.parametrize("url", BYPASSES)
async def test_bypass_table_refused(url: str) -> None:
    assert await refused(url, NOTHING)


@pytest.mark.parametrize("url", ["http://127.1/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/",
                                 "http://127.0.0.1:8080/", "http://localhost/"])
async def test_loopback_allowed_when_listed(url: str) -> None:
    assert not await refused(url, LOOPBACK)


@pytest.mark.parametrize("url", ["http://93.184.216.34/", "https://93.184.216.34:8443/hook?x=1",
                                 "http://[2606:4700:4700::1111]/", "https://example.com/hook",
                                 "http://[::ffff:93.184.216.34]/", "http://134744072/"])
def test_public_targets_pass_validate_url(url: str) -> None:
    assert isinstance(validate_url(url, NOTHING), URL)  # never connected to


def test_validate_url_returns_parsed_url() -> None:
    assert validate_url("https://Example.com/a?b=1", NOTHING) == URL("https://example.com/a?b=1")
    assert validate_url(URL("http://example.com/"), NOTHING) == URL("http://example.com/")


def test_refusal_message_holds_no_credentials_path_or_query() -> None:
    with pytest.raises(BlockedTarget) as info:
        validate_url("http://admin:hunter2@127.0.0.1:8080/some/path?token=abc123", NOTHING)
    message = str(info.value)
    assert "127.0.0.1" in message
    for leaked in ("admin", "hunter2", "some", "path", "token", "abc123"):
        assert leaked not in message


@pytest.mark.parametrize("host", ["127.1", "0", "2130706433", "0x7f.1", "017700000001", "0x7f.0.0.1",
                                  "4294967295", "1.2.3", "0X0A.0x000001", "00000000000177.1", "0x", "08",
                                  "256.1", "1.16777216", "4294967296", "1.2.3.4.5", "1..2", "example", "0xg"])
def test_legacy_ipv4_reads_like_inet_aton(host: str) -> None:
    try:
        expected: IPv4Address | None = IPv4Address(socket.inet_aton(host))
    except OSError:
        expected = None
    assert legacy_ipv4(host) == expected


def test_legacy_ipv4_ignores_absurdly_long_hosts() -> None:
    assert legacy_ipv4("0" * 5000) is None


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.31.255.255", "192.168.0.1", "100.64.0.1", "100.127.255.255", "169.254.1.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.1", "239.255.255.250", "240.0.0.1", "192.0.2.1", "198.18.0.1",
    "::", "::1", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "ff0e::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::7f00:1", "2002:7f00:1::1",
    "2002:a00:1::1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2001::1", "2001:db8::1",
    "not-an-address", "", "127.0.0.1:80",
])
def test_address_refused(address: str) -> None:
    assert not NOTHING.address_allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"])
def test_public_address_allowed(address: str) -> None:
    assert NOTHING.address_allowed(address)


def test_allow_list() -> None:
    policy = NetPolicy.from_strings(["127.0.0.0/8", " 10.1.0.0/16 ", "fd00::/8", "fe80::/10"])
    assert policy.address_allowed("127.0.0.53")
    assert policy.address_allowed(IPv4Address("10.1.2.3"))
    assert policy.address_allowed("::ffff:127.0.0.1")
    assert policy.address_allowed("fd00::1")
    assert policy.address_allowed("fe80::1%eth0")
    assert not policy.address_allowed("10.2.0.1")
    assert not policy.address_allowed("::1")
    assert not policy.address_allowed("169.254.169.254")


def test_from_strings() -> None:
    assert NetPolicy.from_strings([]) == NetPolicy()
    assert NetPolicy.from_strings(["10.0.0.1/8", "::1"]).allow_private == (ip_network("10.0.0.0/8"),
                                                                           ip_network("::1/128"))


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "localhost", "", "10.0.0.0/8,"])
def test_from_strings_names_a_bad_network(bad: str) -> None:
    with pytest.raises(ValueError, match=r"net\.allow_private") as info:
        NetPolicy.from_strings(["127.0.0.0/8", bad])
    assert repr(bad) in str(info.value)


async def test_resolver_refuses_if_any_address_is_private() -> None:
    inner = FakeResolver(["93.184.216.34", "10.0.0.5"])
    with pytest.raises(BlockedTarget, match=r"10\.0\.0\.5") as info:
        await GuardedResolver(NOTHING, inner).resolve("mixed.example", 443)
    assert "mixed.example" in str(info.value)


async def test_resolver_returns_checked_answers_unchanged() -> None:
    inner = FakeResolver(["93.184.216.34", "2606:4700:4700::1111"])
    results = await GuardedResolver(NOTHING, inner).resolve("public.example", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:4700:4700::1111"]
    assert all(r["port"] == 443 for r in results)


async def test_resolver_refuses_a_name_rebound_to_loopback() -> None:
    inner = FakeResolver(["93.184.216.34"], ["127.0.0.1"])
    resolver = GuardedResolver(NOTHING, inner)
    first = await resolver.resolve("rebind.example", 80)
    assert [r["host"] for r in first] == ["93.184.216.34"]
    with pytest.raises(BlockedTarget, match=r"127\.0\.0\.1"):
        await resolver.resolve("rebind.example", 80)


async def test_resolver_empty_answer_is_a_dns_error() -> None:
    with pytest.raises(socket.gaierror):
        await GuardedResolver(NOTHING, FakeResolver([])).resolve("empty.example")


async def test_resolver_close_closes_inner() -> None:
    inner = FakeResolver(["93.184.216.34"])
    await GuardedResolver(NOTHING, inner).close()
    assert inner.closed
    await GuardedResolver(NOTHING).close()  # no inner made yet: nothing to close


@pytest.mark.parametrize(("url", "expected"), [
    ("https://user:pw@hooks.example.com/a/b?token=x#frag", "https://hooks.example.com/a/b?…"),
    ("http://example.com", "http://example.com/"),
    ("http://example.com:8080/p%20q", "http://example.com:8080/p%20q"),
    ("http://u@[::1]:9000/x?", "http://[::1]:9000/x"),
    ("http://[fe80::1%25eth0]/", "http://[fe80::1%25eth0]/"),
    ("file:///etc/passwd", "file:///etc/passwd"),
    ("relative/path?q=1", "relative/path?…"),
    (URL("https://a:b@example.com/x?y=z"), "https://example.com/x?…"),
    ("http://[::1", "<unparseable URL>"),
])
def test_redact_url(url: str | URL, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_never_raises() -> None:
    assert redact_url(None) == "<unparseable URL>"  # type: ignore[arg-type]


async def test_make_connector_refuses_a_second_resolver() -> None:
    with pytest.raises(TypeError):
        make_connector(NOTHING, resolver=FakeResolver(["127.0.0.1"]))


@dataclass
class Target:
    server: BaseTestServer
    hits: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    hits: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="ok")

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        location = request.query.get("to", "")
        raise web.HTTPFound(location)

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/redirect", redirect)
    async with TestServer(app, host="127.0.0.1") as server:
        yield Target(server, hits)


def guarded_session(policy: NetPolicy, inner: AbstractResolver | None = None,
                    **kw: bool) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=make_connector(policy, inner=inner, **kw))


async def test_localhost_refused_through_aiohttp(target: Target) -> None:
    async with guarded_session(NOTHING) as session:
        with pytest.raises(BlockedTarget, match="'localhost' resolves to"):
            await session.get(f"http://localhost:{target.port}/")
    assert target.hits == []


async def test_localhost_allowed_through_aiohttp(target: Target) -> None:
    # ::1 too, in case this host's resolver also answers localhost with it.
    policy = NetPolicy.from_strings(["127.0.0.0/8", "::1/128"])
    url = f"http://localhost:{target.port}/"
    async with guarded_session(policy) as session, session.get(url) as response:
        assert response.status == 200
        assert await response.text() == "ok"
    assert target.hits == ["/"]


async def test_loopback_literal_allowed_when_listed(target: Target) -> None:
    url = validate_url(f"http://127.0.0.1:{target.port}/", LOOPBACK)
    async with guarded_session(LOOPBACK) as session, session.get(url) as response:
        assert response.status == 200
    assert target.hits == ["/"]


@pytest.mark.parametrize("use_dns_cache", [False, True])
async def test_connection_goes_only_to_the_checked_address(target: Target, use_dns_cache: bool) -> None:
    # 127.0.0.1 plays the checked public answer, 127.0.0.2 the internal one the name is re-pointed to.
    policy = NetPolicy.from_strings(["127.0.0.1/32"])
    inner = FakeResolver(["127.0.0.1"], ["127.0.0.2"])
    url = f"http://rebind.example:{target.port}/"
    async with guarded_session(policy, inner, force_close=True, use_dns_cache=use_dns_cache) as session:
        async with session.get(url) as response:
            assert response.status == 200
        if use_dns_cache:
            # The cache holds the checked answer; the re-pointed name is never looked up again.
            async with session.get(url) as response:
                assert response.status == 200
            assert inner.calls == ["rebind.example"]
            assert target.hits == ["/", "/"]
        else:
            with pytest.raises(BlockedTarget, match=r"127\.0\.0\.2"):
                await session.get(url)
            assert inner.calls == ["rebind.example", "rebind.example"]
            assert target.hits == ["/"]


async def test_socket_backstop_refuses_an_unvalidated_literal(target: Target) -> None:
    async with guarded_session(NOTHING) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://127.0.0.1:{target.port}/")  # validate_url skipped on purpose
    assert isinstance(info.value.os_error, BlockedTarget)
    assert isinstance(info.value.__cause__, BlockedTarget)
    assert target.hits == []


async def test_socket_backstop_refuses_a_redirect_to_a_literal(target: Target) -> None:
    policy = NetPolicy.from_strings(["127.0.0.1/32"])
    elsewhere = f"http://127.0.0.2:{target.port}/"
    async with guarded_session(policy) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://127.0.0.1:{target.port}/redirect", params={"to": elsewhere})
    assert isinstance(info.value.os_error, BlockedTarget)
    assert target.hits == ["/redirect"]
