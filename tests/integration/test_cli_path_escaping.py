"""The CLI against a running daemon: a name holding `/` or `..` reaches the resource called that (a 404),
never another one; a bare dot segment is refused; nothing ends in a traceback."""

import pytest

from tests.integration.conftest import ADMIN_KEY, route, run_cli, webhook

pytestmark = pytest.mark.e2e


async def cli(daemon, *args: str):
    return await run_cli(*args, "--url", daemon.url, "--key", ADMIN_KEY)


async def test_a_crafted_name_never_reaches_another_resource(start_daemon, receiver):
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "pr.*", ["hook"])])
    created = await daemon.admin("POST", "/v1/admin/channels",
                                 json_body={"name": "victim2", "type": "webhook", "url": receiver.url("/v")})
    assert created.status == 201, created.body
    leak = await daemon.admin("POST", "/v1/admin/routes",
                              json_body={"name": "leak", "match": "x.*", "channels": ["hook"]})
    assert leak.status == 201, leak.body

    for argv in (["keys", "revoke", "../channels/victim2", "--yes"],
                 ["events", "show", "../keys"],
                 ["channels", "show", "../routes/leak"],
                 ["channels", "test", "../channels/victim2"]):
        result = await cli(daemon, *argv)
        assert result.returncode == 1, (argv, result.stdout, result.stderr)
        assert result.stderr.startswith("alertd: HTTP 404: "), (argv, result.stderr)
        assert len(result.stderr.splitlines()) == 1, (argv, result.stderr)

    for argv in (["keys", "revoke", "..", "--yes"], ["channels", "show", "."], ["events", "show", ".."],
                 ["replay", ".."]):
        result = await cli(daemon, *argv)
        assert result.returncode == 1 and "is not a valid name" in result.stderr, (argv, result.stderr)
        assert len(result.stderr.splitlines()) == 1, (argv, result.stderr)

    assert (await daemon.admin("GET", "/v1/admin/channels/victim2")).status == 200  # still there
    assert receiver.at("/v") == []  # and never sent a test message


async def test_a_bulk_replay_takes_one_channel(start_daemon, receiver):
    daemon = await start_daemon(channels=[webhook("a", receiver.url("/a")), webhook("b", receiver.url("/b"))],
                                routes=[route("all", "pr.*", ["a", "b"])])
    emitted = await daemon.post_event("pr.x")
    await daemon.wait_settled(emitted["id"], 2)
    two = await cli(daemon, "replay", "--event", "pr.*", "--state", "delivered", "--channel", "a",
                    "--channel", "b")
    assert two.returncode == 1 and "a bulk replay takes one --channel" in two.stderr, two.stderr
    one = await cli(daemon, "replay", "--event", "pr.*", "--state", "delivered", "--channel", "b", "--json")
    assert one.returncode == 0, one.stderr
    assert '"count": 1' in one.stdout
    await receiver.wait_count(2, "/b")
    assert len(receiver.at("/a")) == 1
