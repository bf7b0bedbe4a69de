"""The CLI against a stand-in daemon (a stdlib HTTP server on 127.0.0.1 recording the raw request line):
names and ids go into paths escaped as one segment each, dot segments are refused before anything is
sent, a 2xx of an unexpected shape is one line (never a traceback), and a bulk replay takes one --channel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from alertd.cli import main
from alertd.cli.output import CliError, segment
from alertd.client import AdminClient
from tests.unit.cli_stand_in import StandIn, serving


@pytest.fixture
def daemon() -> Iterator[StandIn]:
    with serving() as stand_in:
        yield stand_in


def run(daemon: StandIn, *argv: str) -> int:
    return main([*argv, "--url", daemon.url, "--key", "k"])


@pytest.mark.parametrize(("argv", "method", "path"), [
    (["keys", "revoke", "../channels/victim2", "--yes"], "DELETE", "/v1/admin/keys/..%2Fchannels%2Fvictim2"),
    (["events", "show", "../keys"], "GET", "/v1/admin/events/..%2Fkeys"),
    (["channels", "show", "../routes/leak"], "GET", "/v1/admin/channels/..%2Froutes%2Fleak"),
    (["channels", "test", "a/../../keys"], "POST", "/v1/admin/channels/a%2F..%2F..%2Fkeys/test"),
    (["replay", "x?y#z/.."], "POST", "/v1/admin/events/x%3Fy%23z%2F../replay"),
    (["keys", "revoke", "%2F..", "--yes"], "DELETE", "/v1/admin/keys/%252F.."),
])
def test_a_name_is_sent_as_one_escaped_segment_and_never_reaches_another_resource(
        daemon: StandIn, capsys: pytest.CaptureFixture[str], argv: list[str], method: str, path: str) -> None:
    assert run(daemon, *argv) == 1
    assert daemon.requests() == [(method, path)]
    err = capsys.readouterr().err
    assert err.splitlines() == ["alertd: HTTP 404: no such thing"]


@pytest.mark.parametrize("argv", [
    ["keys", "revoke", "..", "--yes"],
    ["keys", "revoke", ".", "--yes"],
    ["events", "show", ".."],
    ["channels", "show", "."],
    ["channels", "test", ".."],
    ["replay", ".."],
    ["events", "show", ""],
])
def test_a_dot_segment_or_empty_name_is_refused_before_anything_is_sent(
        daemon: StandIn, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert run(daemon, *argv) == 1
    assert daemon.seen == []
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "is not a valid name" in err, err


def test_ids_go_through_the_same_escaping(daemon: StandIn) -> None:
    daemon.status, daemon.body = 200, {"id": 12, "event": "pr.x"}
    assert run(daemon, "silence", "expire", "12", "--yes") == 0
    assert run(daemon, "ack", "17") == 0
    assert daemon.paths() == ["/v1/admin/silences/12", "/v1/admin/incidents/17/ack"]


def test_segment_escapes_every_reserved_character() -> None:
    assert segment("a/b?c#d%e f", "name") == "a%2Fb%3Fc%23d%25e%20f"
    assert segment("..x", "name") == "..x"
    with pytest.raises(CliError, match=r"^key name '\.\.' is not a valid name$"):
        segment("..", "key name")


def test_the_client_keeps_the_escaped_path_and_any_prefix_of_the_url() -> None:
    assert str(AdminClient("http://127.0.0.1:8040", None).url_for("/v1/admin/keys/..%2Fchannels%2Fx")) == \
        "http://127.0.0.1:8040/v1/admin/keys/..%2Fchannels%2Fx"
    assert str(AdminClient("https://ops.example/alertd/", None).url_for("/v1/admin/keys/..")) == \
        "https://ops.example/alertd/v1/admin/keys/.."


@pytest.mark.parametrize(("argv", "body"), [
    (["events", "show", "evt_1"], {}),
    (["events", "show", "evt_1"], {"event": "x", "id": "evt_1", "severity": "info", "created_at": "t",
                                   "payload": {}, "deliveries": [{"id": 1}]}),
    (["events", "list"], []),
    (["channels", "show", "hook"], {"name": "hook"}),
    (["channels", "test", "hook"], None),
    (["keys", "list"], {"keys": "nope"}),
    (["replay", "evt_1"], {"deliveries": 3}),
    (["replay", "--event", "pr.*", "--dry-run"], {"deliveries": [{"id": 1}], "next_cursor": None}),
    (["silence", "list"], {"silences": [None]}),
])
def test_an_answer_of_an_unexpected_shape_is_one_line_not_a_traceback(
        daemon: StandIn, capsys: pytest.CaptureFixture[str], argv: list[str], body: Any) -> None:
    daemon.status, daemon.body = 200, body
    assert run(daemon, *argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"alertd: unexpected answer from {daemon.url}: "), err


def test_a_bulk_replay_refuses_a_second_channel_before_anything_is_sent(
        daemon: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(daemon, "replay", "--event", "pr.*", "--channel", "a", "--channel", "b", "--dry-run") == 1
    assert daemon.seen == []
    assert "a bulk replay takes one --channel" in capsys.readouterr().err


def test_a_bulk_replay_filters_on_its_one_channel(daemon: StandIn) -> None:
    daemon.status, daemon.body = 200, {"deliveries": [], "next_cursor": None, "channels": [{"name": "a"}]}
    assert run(daemon, "replay", "--event", "pr.*", "--channel", "a", "--dry-run", "--json") == 0
    [path] = [p for p in daemon.paths() if p.startswith("/v1/admin/deliveries")]
    assert path.startswith("/v1/admin/deliveries?") and "channel=a" in path


def test_replaying_one_event_still_sends_every_channel(daemon: StandIn) -> None:
    daemon.status, daemon.body = 202, {"event_id": "evt_1", "deliveries": []}
    assert run(daemon, "replay", "evt_1", "--channel", "a", "--channel", "b") == 0
    assert daemon.paths() == ["/v1/admin/events/evt_1/replay"]


@pytest.mark.parametrize("argv", [["--events", "pr.*", "ci.*"], ["--events", "pr.*", "--events", "ci.*"]])
def test_key_scopes_are_taken_after_one_flag_or_with_the_flag_repeated(daemon: StandIn, argv: list[str]) -> None:
    # the README wrote `--events P …`, which argparse refused ("unrecognized arguments: ci.*")
    daemon.status, daemon.body = 201, {"name": "ci", "key": "alertd_x", "prefix": "alertd_x", "role": "producer",
                                       "events": ["pr.*", "ci.*"], "rate": None, "created_at": "2026-01-01T00:00:00Z"}
    assert run(daemon, "keys", "create", "ci", *argv) == 0
    assert daemon.seen[0].body["events"] == ["pr.*", "ci.*"]


def test_migrate_names_the_absolute_path_of_the_database_it_touched(tmp_path, monkeypatch, capsys) -> None:
    # a relative [storage] path resolves against where the command runs: run from the wrong directory, it
    # quietly made a new empty database; the absolute path in the answer shows which file it was
    (tmp_path / "alertd.toml").write_text('[storage]\npath = "here.db"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["migrate", "--config", str(tmp_path / "alertd.toml")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'here.db'}: schema version 0 → ")
