"""SSRF bypass attempts through the real dispatch path: a webhook channel per URL, an event each; the
delivery must go dead with the policy's error and no listener may see a connection. With 127.0.0.0/8 (and
::1) allow-listed, the loopback spellings deliver.

Everything runs inside a private network namespace when `ip netns` works (root): even a policy bug could
reach nothing but that namespace's loopback. Without one, the rows whose target is not loopback
(169.254.169.254, fd00::1) are left out rather than risk a real connection."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.integration.conftest import ADMIN_KEY, PRODUCER_KEY, DaemonProcess, Receiver, Reply, route, webhook
from tests.reliability.helpers import ConnectionCounter, daemon_config, isolated, post_json, record

pytestmark = pytest.mark.e2e
POLICY_PREFIX = "blocked by the outbound URL policy: "


def bypasses(port: int, *, loopback_only: bool) -> dict[str, str]:
    rows = {
        "short": f"http://127.1:{port}/h",
        "zero": f"http://0:{port}/h",
        "decimal": f"http://2130706433:{port}/h",
        "hex": f"http://0x7f.1:{port}/h",
        "octal": f"http://0177.0.0.1:{port}/h",
        "trailing-dot": f"http://127.0.0.1.:{port}/h",
        "v6-loopback": f"http://[::1]:{port}/h",
        "v4-mapped": f"http://[::ffff:127.0.0.1]:{port}/h",
        "localhost": f"http://localhost:{port}/h",
        "userinfo": f"http://good@127.0.0.1:{port}/h",
        "userinfo-pw": f"http://good:hunter2@127.0.0.1:{port}/h?token=abc",
    }
    if not loopback_only:
        rows["metadata"] = "http://169.254.169.254/latest/meta-data/"
        rows["ula"] = f"http://[fd00::1]:{port}/h"
    return rows


NOT_LOOPBACK = {"metadata", "ula"}
STILL_REFUSED_WHEN_LISTED = {"zero", "metadata", "ula"}  # 0.0.0.0 is unspecified, not 127.0.0.0/8
# aiohttp ≥ 3.13 itself refuses legacy numeric IPv4 hosts at connect time ("is not a canonical IPv4
# address"), whatever the policy says: with loopback allowed these are dead as a permanent "invalid URL".
NOT_CANONICAL = {"short", "decimal", "octal", "trailing-dot"}


async def run_table(tmp_path: Path, allow: list[str], loopback_only: bool) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        v4 = await ConnectionCounter("127.0.0.1").start()
        v6 = await ConnectionCounter("::1", v4.port).start()
        rows = bypasses(v4.port, loopback_only=loopback_only)
        name = "strict" if not allow else "listed"
        config = daemon_config(tmp_path, name, channels=[webhook(k, u, timeout="2s") for k, u in rows.items()],
                               routes=[route(k, f"ssrf.{k}", [k]) for k in rows], net={"allow_private": allow},
                               dispatch={"max_attempts": 2})
        daemon = DaemonProcess(tmp_path, name, config, http)
        await daemon.start()
        try:
            ids = {k: (await daemon.post_event(f"ssrf.{k}"))["id"] for k in rows}
            results = {k: (await daemon.wait_settled(i, 1))["deliveries"][0] for k, i in ids.items()}
            assert await daemon.stop() == 0
            daemon.assert_clean()
        finally:
            if daemon.running:
                await daemon.stop()
            await v4.close()
            await v6.close()
        return {"rows": rows, "results": results, "connections": v4.connections + v6.connections}


def test_bypass_spellings_are_refused_before_any_connection(netns, tmp_path):
    out = isolated(netns, lambda: asyncio.run(run_table(tmp_path, [], loopback_only=netns is None)))
    assert out["connections"] == 0, "a refused target was connected to"
    durations = {}
    for name, delivery in out["results"].items():
        attempts = delivery["attempts_list"]
        assert delivery["state"] == "dead" and len(attempts) == 1, (name, delivery)
        error = attempts[0]["error"]
        assert error.startswith(POLICY_PREFIX), (name, error)
        assert "good" not in error and "hunter2" not in error and "token" not in error, (name, error)
        if name == "localhost":
            assert "'localhost' resolves to" in error, error
        else:  # an IP literal: refused by validate_url, before any socket exists
            assert "is not a public address and is not in net.allow_private" in error and " is refused: " in error, (
                name, error)
            assert attempts[0]["duration_ms"] < 50, (name, attempts[0])
        durations[name] = attempts[0]["duration_ms"]
    record("SSRF bypass table (allow_private = [])", rows=len(out["results"]), refused=len(out["results"]),
           connections_seen=0, netns=netns is not None, max_refusal_ms=max(durations.values()),
           non_loopback_rows=sorted(NOT_LOOPBACK & set(out["results"])))


def test_loopback_spellings_deliver_when_allow_listed(netns, tmp_path):
    out = isolated(netns, lambda: asyncio.run(run_table(tmp_path, ["127.0.0.0/8", "::1/128"],
                                                               loopback_only=netns is None)))
    results = out["results"]
    delivered = {k for k, d in results.items() if d["state"] == "delivered"}
    refused = STILL_REFUSED_WHEN_LISTED & set(results)
    assert delivered == set(results) - refused - NOT_CANONICAL, {k: d["state"] for k, d in results.items()}
    for name in refused | NOT_CANONICAL:
        attempts = results[name]["attempts_list"]
        assert results[name]["state"] == "dead" and len(attempts) == 1, (name, attempts)  # permanent: no retry
        expected = POLICY_PREFIX if name in refused else "invalid URL: is not a canonical IPv4 address"
        assert attempts[0]["error"].startswith(expected), (name, attempts[0])
    assert out["connections"] == len(delivered)
    record("SSRF allow-listed loopback", delivered=sorted(delivered), policy_refused=sorted(refused),
           invalid_url_for_aiohttp=sorted(NOT_CANONICAL))


# ------------------------------------------------------------------------------------------ redirects


async def run_redirects(tmp_path: Path, loopback_only: bool) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        elsewhere = await ConnectionCounter("127.0.0.2").start()
        receiver = await Receiver().start()
        receiver.script("/to-loopback", Reply(status=302, headers={"Location": f"http://127.0.0.2:{elsewhere.port}/"}))
        receiver.script("/to-metadata", Reply(status=307, headers={"Location": "http://169.254.169.254/latest/"}))
        receiver.script("/to-ula", Reply(status=301, headers={"Location": "http://[fd00::1]/"}))
        names = ["to-loopback"] if loopback_only else ["to-loopback", "to-metadata", "to-ula"]
        config = daemon_config(tmp_path, "redirects", channels=[webhook(n, receiver.url(f"/{n}")) for n in names],
                               routes=[route(n, f"redir.{n}", [n]) for n in names],
                               net={"allow_private": ["127.0.0.1/32"]})
        daemon = DaemonProcess(tmp_path, "redirects", config, http)
        await daemon.start()
        try:
            ids = {n: (await daemon.post_event(f"redir.{n}"))["id"] for n in names}
            results = {n: (await daemon.wait_settled(i, 1))["deliveries"][0] for n, i in ids.items()}
            assert await daemon.stop() == 0
            daemon.assert_clean()
        finally:
            if daemon.running:
                await daemon.stop()
            await receiver.close()
            await elsewhere.close()
        return {"results": results, "connections": elsewhere.connections, "hops": len(receiver.requests)}


def test_a_redirect_to_a_private_address_is_never_followed(netns, tmp_path):
    out = isolated(netns, lambda: asyncio.run(run_redirects(tmp_path, loopback_only=netns is None)))
    assert out["connections"] == 0
    assert out["hops"] == len(out["results"])  # one request each, to the receiver only
    for name, delivery in out["results"].items():
        attempts = delivery["attempts_list"]
        assert delivery["state"] == "dead" and len(attempts) == 1, (name, delivery)
        assert attempts[0]["error"].endswith("redirect not followed"), attempts[0]
    record("SSRF redirects", followed=0, dead=len(out["results"]))


# ------------------------------------------------------------------------------------------ DNS answers


class ScriptedResolver(AbstractResolver):
    """A name service whose answers change: per host, a list of answers; each lookup takes the next."""

    def __init__(self, script: dict[str, list[list[str]]]) -> None:
        self.script = {host: list(answers) for host, answers in script.items()}
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.calls.append(host)
        answers = self.script.get(host)
        if not answers:
            raise OSError(socket.EAI_NONAME, f"{host} not in the script")
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for a in addresses]

    async def close(self) -> None:
        return None


async def wait_settled_http(http: aiohttp.ClientSession, base: str, event_id: str) -> dict[str, Any]:
    for _ in range(200):
        async with http.get(f"{base}/v1/admin/events/{event_id}", headers={"x-api-key": ADMIN_KEY}) as response:
            event = await response.json()
        if all(d["state"] in ("delivered", "dead") for d in event["deliveries"]):
            return event  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event_id} never settled: {event}")


async def run_rebinding(tmp_path: Path, resolver: ScriptedResolver) -> dict[str, Any]:
    from alertd.config import load_config
    from alertd.daemon import Daemon

    checked = await ConnectionCounter("127.0.0.2").start()  # plays the public address the check saw
    internal = await ConnectionCounter("127.0.0.1", checked.port).start()  # where the name is re-pointed
    port = checked.port
    toml = tmp_path / "rebind.toml"
    toml.write_text(f"""
admin_key = "{ADMIN_KEY}"
[server]
listen = "127.0.0.1:0"
[storage]
path = "{tmp_path / 'rebind.db'}"
[net]
allow_private = ["127.0.0.2/32"]
[dispatch]
max_attempts = 1
[log]
level = "error"
[[keys]]
name = "producer"
key = "{PRODUCER_KEY}"
[[channels]]
name = "rebind"
type = "webhook"
url = "http://rebind.test:{port}/h"
[[channels]]
name = "mixed"
type = "webhook"
url = "http://mixed.test:{port}/h"
[[channels]]
name = "internal"
type = "webhook"
url = "http://internal.test:{port}/h"
[[routes]]
name = "all"
match = "*"
channels = ["rebind", "mixed", "internal"]
""")
    daemon = Daemon(load_config(toml))
    await daemon.start()
    base = f"http://127.0.0.1:{daemon.bound_port}"
    rows: dict[str, list[tuple[str, list[str | None]]]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(4):
                status, _, body = await post_json(http, base + "/v1/events", {"event": "dns.test", "payload": {"n": n}})
                assert status == 202, body
                event = await wait_settled_http(http, base, json.loads(body)["id"])
                for d in event["deliveries"]:
                    rows.setdefault(d["channel"], []).append((d["state"], [a["error"] for a in d["attempts_list"]]))
    finally:
        await daemon.stop()
        await checked.close()
        await internal.close()
    return {"rows": rows, "checked": checked.connections, "internal": internal.connections}


def test_a_name_that_changes_its_answer_only_ever_reaches_the_checked_address(netns, tmp_path, monkeypatch):
    import alertd.daemon

    resolver = ScriptedResolver({
        "rebind.test": [["127.0.0.2"], ["127.0.0.1"]],  # allowed at the check, internal afterwards
        "mixed.test": [["127.0.0.2", "127.0.0.1"]],  # one good answer does not excuse a bad one
        "internal.test": [["127.0.0.1"]],
    })
    monkeypatch.setattr(alertd.daemon.Daemon, "name_service", resolver)  # for aiohttp's client and the webhook's
    out = isolated(netns, lambda: asyncio.run(run_rebinding(tmp_path, resolver)))
    assert out["internal"] == 0, "a connection reached the re-pointed (internal) address"
    rebind = out["rows"]["rebind"]
    assert all(state == "delivered" or errors[-1].startswith(POLICY_PREFIX) for state, errors in rebind), rebind
    assert out["checked"] == sum(1 for state, _ in rebind if state == "delivered") >= 1
    for name in ("mixed", "internal"):
        for state, errors in out["rows"][name]:
            assert state == "dead", (name, errors)
            assert errors[0].startswith(POLICY_PREFIX) and "resolves to" in errors[0], (name, errors)
    record("SSRF DNS answers (fake resolver)", rebind_delivered_to_checked=out["checked"], reached_internal=0,
           lookups=len(resolver.calls))
