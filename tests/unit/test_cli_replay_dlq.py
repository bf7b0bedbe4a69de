"""`alertd replay` and `alertd dlq retry` against a stand-in daemon (a stdlib HTTP server on 127.0.0.1 that
answers by path and keeps every request with its JSON body): a dry run of one event sends nothing, the
bulk-only flags are refused next to an EVENT_ID, `dlq retry --limit` is honoured, and a bulk replay sends
each (event, channel) once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from alertd.cli import main
from tests.unit.cli_stand_in import Answer, StandIn, serving


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], StandIn]]:
    with ExitStack() as stack:
        yield lambda answer: stack.enter_context(serving(answer))


def run(daemon: StandIn, *argv: str) -> int:
    return main([*argv, "--url", daemon.url, "--key", "k"])


def delivery(id_: int, event_id: str, channel: str, replay_of: int | None = None) -> dict[str, Any]:
    return {"id": id_, "event_id": event_id, "event": "pr.failed", "channel": channel, "state": "dead",
            "attempts": 5, "last_error": "HTTP 500", "created_at": f"2025-01-01T00:00:{id_:02d}Z",
            "origin": "replay" if replay_of else "route", "replay_of": replay_of}


EVENT = {"id": "evt_1", "event": "pr.failed", "severity": "error", "payload": {"repo": "web"},
         "created_at": "2025-01-01T00:00:00Z", "deliveries": [delivery(10, "evt_1", "kosh")]}


def event_daemon(method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    if (method, path) == ("GET", "/v1/admin/events/evt_1"):
        return 200, EVENT
    if (method, path) == ("POST", "/v1/admin/routes/test"):
        return 200, {"event": "pr.failed", "severity": "error", "channels": ["kosh", "mail"], "routes": []}
    if (method, path) == ("POST", "/v1/admin/events/evt_1/replay"):
        return 202, {"event_id": "evt_1", "deliveries": [delivery(99, "evt_1", "kosh", 10)]}
    return 404, {"error": {"code": "not_found", "message": "no such thing"}}


# ---- 1: replay EVENT_ID --dry-run ------------------------------------------------------------------

def test_a_dry_run_of_one_event_sends_nothing_and_names_the_channels_the_routes_match_now(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = serve(event_daemon)
    assert run(daemon, "replay", "evt_1", "--dry-run") == 0
    assert [p for p, _ in daemon.posts()] == ["/v1/admin/routes/test"]  # a read: nothing replayed
    assert daemon.posts()[0][1] == {"event": "pr.failed", "payload": {"repo": "web"}, "severity": "error"}
    out = capsys.readouterr().out
    assert "would replay to kosh, mail" in out and "dry run" in out


def test_a_dry_run_of_one_event_to_named_channels_only_reads_the_event(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = serve(event_daemon)
    assert run(daemon, "replay", "evt_1", "--channel", "kosh", "--channel", "pager", "--channel", "kosh",
               "--dry-run", "--json") == 0
    assert daemon.posts() == []
    assert [(seen.method, seen.path) for seen in daemon.seen] == [("GET", "/v1/admin/events/evt_1")]
    assert json.loads(capsys.readouterr().out) == {
        "dry_run": True, "event_id": "evt_1", "count": 2,
        "deliveries": [{"channel": "kosh", "replay_of": 10}, {"channel": "pager", "replay_of": None}]}


def test_a_dry_run_of_an_unknown_event_is_the_same_404_and_sends_nothing(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = serve(event_daemon)
    assert run(daemon, "replay", "evt_nope", "--dry-run") == 1
    assert daemon.posts() == []
    assert capsys.readouterr().err.splitlines() == ["alertd: HTTP 404: no such thing"]


def test_replaying_one_event_without_dry_run_still_replays(serve: Callable[[Answer], StandIn]) -> None:
    daemon = serve(event_daemon)
    assert run(daemon, "replay", "evt_1") == 0
    assert daemon.posts() == [("/v1/admin/events/evt_1/replay", {})]


@pytest.mark.parametrize(("flags", "named"), [
    (["--state", "dead"], "--state"),
    (["--until", "1h"], "--until"),
    (["--limit", "5"], "--limit"),
    (["--state", "dead", "--limit", "5", "--dry-run"], "--state, --limit"),
])
def test_bulk_only_flags_are_refused_next_to_an_event_id_before_anything_is_sent(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str], flags: list[str],
        named: str) -> None:
    daemon = serve(event_daemon)
    assert run(daemon, "replay", "evt_1", *flags) == 1
    assert daemon.seen == []
    err = capsys.readouterr().err
    assert err.splitlines() == [f"alertd: {named}: only for a bulk replay (--event/--since), not with an EVENT_ID"]


# ---- 2: dlq retry --limit --------------------------------------------------------------------------

def dead_letters(count: int) -> Answer:
    """A dead-letter queue of `count` deliveries (ids count..1, newest first) that pages like the API."""
    dead = [delivery(n, f"evt_{n}", "kosh") for n in range(count, 0, -1)]

    def answer(method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if (method, path) == ("GET", "/v1/admin/dlq"):
            limit = int(query["limit"][0])
            assert limit <= 500
            cursor = int(query["cursor"][0]) if "cursor" in query else None
            rows = [d for d in dead if cursor is None or d["id"] < cursor][:limit]
            return 200, {"deliveries": rows, "next_cursor": str(rows[-1]["id"]) if len(rows) == limit else None}
        if (method, path) == ("POST", "/v1/admin/dlq/retry"):
            assert "filter" not in body and len(body["ids"]) <= 500
            return 202, {"retried": len(body["ids"]), "ids": body["ids"]}
        return 404, {"error": {"code": "not_found", "message": "no such thing"}}
    return answer


def retried(daemon: StandIn) -> list[int]:
    return [i for path, body in daemon.posts() if path == "/v1/admin/dlq/retry" for i in body["ids"]]


def test_dlq_retry_by_filter_retries_at_most_limit_the_newest(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = serve(dead_letters(40))
    assert run(daemon, "dlq", "retry", "--channel", "kosh", "--limit", "3", "--yes") == 0
    assert retried(daemon) == [40, 39, 38]
    assert "retried 3 of 3" in capsys.readouterr().out


def test_dlq_retry_by_filter_pages_past_500_and_posts_in_chunks_of_at_most_500(
        serve: Callable[[Answer], StandIn]) -> None:
    daemon = serve(dead_letters(1300))
    assert run(daemon, "dlq", "retry", "--channel", "kosh", "--limit", "1200", "--yes", "--json") == 0
    assert retried(daemon) == list(range(1300, 100, -1))


def test_dlq_retry_by_filter_without_limit_still_takes_every_match(serve: Callable[[Answer], StandIn]) -> None:
    daemon = serve(dead_letters(120))  # more than the listing default of 50
    assert run(daemon, "dlq", "retry", "--channel", "kosh", "--yes", "--json") == 0
    assert len(retried(daemon)) == 120


def test_dlq_retry_asks_for_yes_with_the_limited_count(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = serve(dead_letters(40))
    assert run(daemon, "dlq", "retry", "--since", "1h", "--limit", "2") == 1
    assert daemon.posts() == []
    assert capsys.readouterr().err.splitlines() == [
        "alertd: more deliveries match than the 2 taken (--limit); run again for the rest, or raise --limit",
        "alertd: 2 dead deliveries match; pass --yes to retry them all"]


def test_a_dlq_retry_cut_by_its_limit_says_more_match(serve: Callable[[Answer], StandIn],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # the leftover page was dropped: the newest N went out and the rest were never mentioned
    daemon = serve(dead_letters(40))
    assert run(daemon, "dlq", "retry", "--since", "1h", "--limit", "40", "--yes") == 0
    assert "more deliveries match" not in capsys.readouterr().err  # exactly 40: nothing left over
    assert run(daemon, "dlq", "retry", "--since", "1h", "--limit", "39", "--yes") == 0
    assert "more deliveries match than the 39 taken" in capsys.readouterr().err


def test_dlq_retry_refuses_a_limit_next_to_ids(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = serve(dead_letters(4))
    assert run(daemon, "dlq", "retry", "1", "2", "--limit", "1", "--yes") == 1
    assert daemon.seen == []
    assert "not both" in capsys.readouterr().err


# ---- 3: a bulk replay sends each (event, channel) once ----------------------------------------------

# newest first, as the API lists them: 11 is a dead replay of the dead 10 (both evt_1 → kosh)
DEAD = [delivery(13, "evt_1", "mail"), delivery(12, "evt_2", "kosh"), delivery(11, "evt_1", "kosh", 10),
        delivery(10, "evt_1", "kosh")]


CONFIGURED = ["mail", "kosh"]


def replay_daemon(method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    if (method, path) == ("GET", "/v1/admin/deliveries"):
        return 200, {"deliveries": DEAD, "next_cursor": None}
    if (method, path) == ("GET", "/v1/admin/channels"):
        return 200, {"channels": [{"name": name} for name in CONFIGURED]}
    if (method, path) == ("POST", "/v1/admin/deliveries/replay"):
        return 202, {"deliveries": [delivery(100 + i, "evt_x", "kosh", i) for i in body["ids"]]}
    return 404, {"error": {"code": "not_found", "message": "no such thing"}}


def test_a_bulk_replay_sends_the_newest_delivery_of_each_event_and_channel_once(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = serve(replay_daemon)
    assert run(daemon, "replay", "--event", "pr.*", "--state", "dead") == 0
    assert daemon.posts() == [("/v1/admin/deliveries/replay", {"ids": [13, 12, 11]})]
    assert "replayed 3 deliveries (1 older" in capsys.readouterr().out


def test_a_bulk_dry_run_counts_what_the_replay_would_send(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str]) -> None:
    daemon = serve(replay_daemon)
    assert run(daemon, "replay", "--event", "pr.*", "--dry-run", "--json") == 0
    assert daemon.posts() == []
    shown = json.loads(capsys.readouterr().out)
    assert shown["count"] == 3 and [d["id"] for d in shown["deliveries"]] == [13, 12, 11]
    assert shown["collapsed"] == 1
    assert run(daemon, "replay", "--event", "pr.*", "--dry-run") == 0
    assert "3 deliveries would be replayed" in capsys.readouterr().out


def test_a_bulk_replay_leaves_out_deliveries_to_channels_no_longer_configured(
        serve: Callable[[Answer], StandIn], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the API refuses them (nothing to send them with): sent along, they stopped the bulk replay partway
    monkeypatch.setitem(globals(), "CONFIGURED", ["kosh"])
    daemon = serve(replay_daemon)
    assert run(daemon, "replay", "--event", "pr.*", "--state", "dead") == 0
    assert daemon.posts() == [("/v1/admin/deliveries/replay", {"ids": [12, 11]})]
    assert "1 to channels no longer configured left out: mail" in capsys.readouterr().out
    assert run(daemon, "replay", "--event", "pr.*", "--dry-run", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["count"] == 2 and shown["unconfigured"] == 1
