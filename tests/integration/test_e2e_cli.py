"""Every `alertd` subcommand against a running daemon (subprocesses both), a backup taken under ingest
load, and SIGHUP with a broken file."""

import asyncio
import json
import signal
import sqlite3

import pytest

from tests.integration.conftest import ADMIN_KEY, PRODUCER_KEY, route, run_cli, webhook

pytestmark = pytest.mark.e2e


async def cli(daemon, *args: str, key: str = ADMIN_KEY, ok: bool = True):
    result = await run_cli(*args, "--url", daemon.url, "--key", key)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


async def cli_json(daemon, *args: str, key: str = ADMIN_KEY):
    return json.loads((await cli(daemon, *args, "--json", key=key)).stdout)


async def test_every_subcommand_works_against_a_running_daemon(start_daemon, receiver, tmp_path):
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "pr.*", ["hook"])])
    emitted = await cli_json(daemon, "emit", "pr.run.failed", "--payload", '{"repo": "web"}', "--severity", "error",
                             key=PRODUCER_KEY)
    assert emitted["deliveries"] == 1
    await daemon.wait_settled(emitted["id"], 1)
    assert (await cli_json(daemon, "events", "list"))["events"][0]["id"] == emitted["id"]
    assert (await cli_json(daemon, "events", "show", emitted["id"]))["deliveries"][0]["state"] == "delivered"
    assert len((await cli_json(daemon, "deliveries", "list", "--state", "delivered"))["deliveries"]) == 1
    assert (await cli_json(daemon, "dlq", "list"))["deliveries"] == []
    assert [c["name"] for c in (await cli_json(daemon, "channels", "list"))["channels"]] == ["hook"]
    assert (await cli_json(daemon, "channels", "show", "hook"))["type"] == "webhook"
    assert (await cli_json(daemon, "channels", "test", "hook"))["ok"]
    assert [r["name"] for r in (await cli_json(daemon, "routes", "list"))["routes"]] == ["all"]
    tested = await cli_json(daemon, "routes", "test", "pr.x", "--payload", "{}")
    assert tested["channels"] == ["hook"]
    created = await cli_json(daemon, "keys", "create", "ci", "--events", "deploy.*")
    assert created["key"].startswith("alertd_")
    assert "ci" in [k["name"] for k in (await cli_json(daemon, "keys", "list"))["keys"]]
    assert created["key"] not in (await cli(daemon, "keys", "list")).stdout
    await cli(daemon, "keys", "revoke", "ci", "--yes")
    refused = await cli(daemon, "emit", "deploy.done", key=created["key"], ok=False)
    assert refused.returncode == 1 and "401" in refused.stderr
    assert (await cli_json(daemon, "reload"))["reloaded"]
    silence = await cli_json(daemon, "silence", "add", "--event", "pr.*", "--duration", "1h", "--comment", "test")
    assert [s["id"] for s in (await cli_json(daemon, "silence", "list"))["silences"]] == [silence["id"]]
    await cli(daemon, "silence", "expire", str(silence["id"]), "--yes")
    assert (await cli_json(daemon, "incidents", "list"))["incidents"] == []
    assert isinstance((await cli_json(daemon, "audit", "list"))["audit"], list)
    replayed = await cli_json(daemon, "replay", emitted["id"])
    assert replayed["deliveries"][0]["origin"] == "replay"
    # the local commands, on the same database
    config = str(daemon.config_path)
    assert (await run_cli("check-config", "--config", config)).returncode == 0
    migrated = await run_cli("migrate", "--config", config)
    assert migrated.returncode == 0 and "up to date" in migrated.stdout
    backup = await run_cli("backup", str(tmp_path / "copy.db"), "--config", config)
    assert backup.returncode == 0, backup.stderr


async def test_a_backup_taken_under_ingest_load_is_a_consistent_database(start_daemon, tmp_path):
    daemon = await start_daemon()
    stop = asyncio.Event()
    accepted = 0

    async def load() -> None:
        nonlocal accepted
        n = 0
        while not stop.is_set():
            batch = [{"event": "load.tick", "payload": {"n": n + i}} for i in range(50)]
            response = await daemon.post_events(batch)
            assert response.status == 202
            accepted += 50
            n += 50

    producers = [asyncio.create_task(load()) for _ in range(4)]
    await asyncio.sleep(0.5)
    result = await run_cli("backup", str(tmp_path / "hot.db"), "--config", str(daemon.config_path))
    stop.set()
    await asyncio.gather(*producers)
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(tmp_path / "hot.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        orphans = conn.execute("SELECT count(*) FROM deliveries d LEFT JOIN events e ON e.id = d.event_id "
                               "WHERE e.id IS NULL").fetchone()[0]
    finally:
        conn.close()
    assert 0 < events <= accepted and orphans == 0


async def test_sighup_with_a_broken_file_keeps_the_old_routes_serving(start_daemon, receiver):
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "pr.*", ["hook"])])
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good + '\n[[routes]]\nname = "broken"\nmatch = "*"\nchannels = ["nope"]\n')
    daemon.send_signal(signal.SIGHUP)
    await daemon.wait_for(lambda: any(r.get("event") == "reload_rejected" for r in daemon.log_records()),
                          what="the reload to be rejected")
    accepted = await daemon.post_event("pr.still.routed")
    assert accepted["deliveries"] == 1
    await receiver.wait_count(1)
    daemon.config_path.write_text(good.replace('match = "pr.*"', 'match = "*"'))
    daemon.send_signal(signal.SIGHUP)
    await daemon.wait_for(lambda: any(r.get("event") == "config_applied" for r in daemon.log_records()),
                          what="the reload to apply")
    assert (await daemon.post_event("deploy.now.routed"))["deliveries"] == 1


async def test_serve_on_a_port_in_use_exits_at_once_with_one_line_and_sends_nothing(start_daemon, receiver):
    # a second `alertd serve` on the same config: it used to start its lanes, send the backlog, fail to bind,
    # and then hang (its store's reader thread kept the process alive, SIGTERM included)
    daemon = await start_daemon(channels=[webhook("hook", receiver.url())], routes=[route("all", "pr.*", ["hook"])])
    await daemon.wait_settled((await daemon.post_event("pr.run.failed"))["id"], 1)
    busy = daemon.config_path.with_name("second.toml")
    busy.write_text(daemon.config_path.read_text().replace('"127.0.0.1:0"', f'"127.0.0.1:{daemon.port}"'))
    second = await run_cli("serve", "--config", str(busy), timeout=20)
    assert second.returncode == 1, second.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{daemon.port}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr  # no drain/stop lines: nothing had run
    assert len(receiver.at("/hook")) == 1  # nothing went out twice
