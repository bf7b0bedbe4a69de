"""`alertd replay`: one event, and in bulk, through the CLI as an operator runs it."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import ADMIN_KEY, Reply, free_port, route, run_cli, webhook

pytestmark = pytest.mark.e2e


async def test_cli_replays_a_dead_event_after_the_receiver_recovers(start_daemon, receiver):
    receiver.script("/hook", Reply(400, b"not today"))
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "*", ["hook"])])
    accepted = await daemon.post_event("pr.run.failed", {"repo": "alertd", "run": 42}, severity="error")
    [dead] = (await daemon.wait_settled(accepted["id"], 1))["deliveries"]
    assert dead["state"] == "dead" and dead["attempts"] == 1

    receiver.script("/hook", 200)
    result = await run_cli("replay", accepted["id"], "--url", daemon.url, "--key", ADMIN_KEY)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert accepted["id"] in result.stdout and "hook" in result.stdout
    event = await daemon.wait_settled(accepted["id"], 2)
    original, replay = event["deliveries"]
    assert original["id"] == dead["id"] and original["state"] == "dead" and original["origin"] == "route"
    assert replay["origin"] == "replay" and replay["replay_of"] == dead["id"]
    assert replay["state"] == "delivered" and replay["attempts"] == 1
    first, second = receiver.at("/hook")
    assert first.body == second.body  # the same event …
    assert first.headers["webhook-id"] != second.headers["webhook-id"]  # … as a new delivery
    assert (await daemon.event(accepted["id"]))["deliveries"][1]["attempts_list"][0]["http_status"] == 200


async def test_cli_bulk_replay_lists_with_dry_run_then_replays_the_dead_ones(start_daemon, receiver):
    recovered = False

    def prs(request):
        return 200 if recovered or request.json()["event"] == "pr.synced" else Reply(400)

    receiver.script("/prs", prs)
    receiver.script("/deploys", 400)
    daemon = await start_daemon(
        channels=[webhook("prs", receiver.url("/prs")), webhook("deploys", receiver.url("/deploys"))],
        routes=[route("prs", "pr.*", ["prs"]), route("deploys", "deploy.*", ["deploys"])])
    posted = {name: (await daemon.post_event(name))["id"]
              for name in ("pr.opened", "pr.closed", "pr.merged", "pr.synced", "deploy.failed")}
    for event_id in posted.values():
        await daemon.wait_settled(event_id, 1)
    dead_prs = {d["id"] for d in await daemon.all_deliveries(state="dead", event="pr.*")}
    assert len(dead_prs) == 3
    before = await daemon.all_deliveries()
    assert len(before) == 5

    remote = ("--url", daemon.url, "--key", ADMIN_KEY)
    dry = await run_cli("replay", "--event", "pr.*", "--since", "1h", "--state", "dead", "--dry-run", "--json",
                        *remote)
    assert dry.returncode == 0, dry.stderr
    listed = json.loads(dry.stdout)
    assert listed["dry_run"] is True and listed["count"] == 3
    assert {d["id"] for d in listed["deliveries"]} == dead_prs
    assert {d["event"] for d in listed["deliveries"]} == {"pr.opened", "pr.closed", "pr.merged"}
    assert await daemon.all_deliveries() == before  # a dry run creates nothing

    recovered = True
    real = await run_cli("replay", "--event", "pr.*", "--since", "1h", "--state", "dead", "--json", *remote)
    assert real.returncode == 0, real.stderr
    replayed = json.loads(real.stdout)
    assert replayed["dry_run"] is False and replayed["count"] == 3
    assert {d["replay_of"] for d in replayed["deliveries"]} == dead_prs
    assert all(d["origin"] == "replay" and d["channel"] == "prs" for d in replayed["deliveries"])
    for name in ("pr.opened", "pr.closed", "pr.merged"):
        event = await daemon.wait_settled(posted[name], 2)
        assert [(d["origin"], d["state"]) for d in event["deliveries"]] == [("route", "dead"), ("replay", "delivered")]
    assert len((await daemon.event(posted["deploy.failed"]))["deliveries"]) == 1  # outside the filter
    assert len((await daemon.event(posted["pr.synced"]))["deliveries"]) == 1  # delivered, not dead
    assert len(await daemon.all_deliveries()) == 8


async def test_cli_replay_with_a_nonsense_since_fails_with_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    result = await run_cli("replay", "--event", "pr.*", "--since", "nonsense", "--url", url, "--key", ADMIN_KEY)

    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("alertd: ") and "--since" in lines[0], result.stderr


async def test_cli_replay_against_a_daemon_that_is_not_running_fails_with_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    result = await run_cli("replay", "evt_01HZZZZZZZZZZZZZZZZZZZZZZZ", "--url", url, "--key", ADMIN_KEY)

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "cannot reach alertd" in lines[0], result.stderr
