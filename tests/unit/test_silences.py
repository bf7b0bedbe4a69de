import argparse
import asyncio
import time
from typing import Any

import pytest
from pydantic import ValidationError

from alertd.cli import silence as silence_cli
from alertd.cli.output import CliError
from alertd.conditions import parse_conditions
from alertd.config import describe_validation_error
from alertd.ingest import Ingest, RouteTable
from alertd.model import DeliveryState, Envelope, Severity
from alertd.redact import compile_sensitive
from alertd.routing import Route
from alertd.silences import Silence, SilenceBook, SilenceDecl, SilenceMatchers, SilenceSet
from alertd.store import Store, silence_ops

T0 = 1_800_000_000.0


def silence(event: str = "*", when: Any = None, any_: Any = None, starts: float = T0, ends: float = T0 + 3600,
            expired_at: float | None = None, silence_id: int = 1) -> Silence:
    return Silence(silence_id, SilenceMatchers(event, parse_conditions(when, any_)), starts, ends, "ops", "why",
                   expired_at=expired_at)


def target(name: str = "pr.run.failed", severity: str = "error", **payload: Any) -> dict[str, Any]:
    return {"event": name, "severity": severity, "payload": payload}


# ---- matching (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("*", "anything.at.all", True),
    ("pr.*", "pr.run.failed", True),
    ("pr.*", "pr", False),
    ("pr.run.failed", "pr.run.failed", True),
    ("pr.run.failed", "pr.run.failed.more", False),
])
def test_the_event_pattern_matches_like_a_routes(pattern, name, expected):
    assert silence(pattern).matches(name, target(name)) is expected


def test_conditions_look_at_the_envelope_like_a_routes():
    s = silence("pr.*", when=[{"field": "payload.env", "op": "eq", "value": "prod"},
                              {"field": "payload.host", "op": "matches", "value": "^db-"}])
    assert s.matches("pr.x", target(env="prod", host="db-1"))
    assert not s.matches("pr.x", target(env="prod", host="web-1"))
    assert not s.matches("pr.x", target(host="db-1"))  # a missing field fails the condition
    by_severity = silence(any_=[[{"field": "severity", "op": "le", "value": "warning"}]])
    assert by_severity.matches("a", target("a", "info")) and not by_severity.matches("a", target("a", "error"))


@pytest.mark.parametrize(("now", "active", "state"), [
    (T0 - 0.001, False, "pending"),
    (T0, True, "active"),
    (T0 + 3599.999, True, "active"),
    (T0 + 3600, False, "expired"),
])
def test_a_silence_is_active_from_starts_at_up_to_but_not_including_ends_at(now, active, state):
    s = silence()
    assert s.active(now) is active and s.state(now) == state


def test_an_expired_silence_is_never_active_again():
    s = silence(expired_at=T0 + 10)
    assert not s.active(T0 + 20) and s.state(T0 + 20) == "expired"
    assert SilenceSet([s]).first_match("a", target("a"), T0 + 20) is None
    assert len(SilenceSet([s])) == 0  # an expired one is not even held


def test_the_first_matching_silence_by_id_wins_and_inactive_ones_are_passed_over():
    later = silence("pr.*", silence_id=7)
    first = silence("pr.*", silence_id=3)
    pending = silence("*", starts=T0 + 100, silence_id=1)
    found = SilenceSet([later, pending, first]).first_match("pr.x", target("pr.x"), T0 + 1)
    assert found is not None and found.id == 3


def test_the_book_swaps_the_whole_set():
    book = SilenceBook()
    before = book.current()
    book.swap([silence()])
    assert len(before) == 0 and len(book.current()) == 1


# ---- declarations -------------------------------------------------------------------------------


def decl(**raw: Any) -> SilenceDecl:
    return SilenceDecl.model_validate({"comment": "maintenance", **raw})


def test_a_declaration_gives_a_window_from_now_or_from_its_times():
    assert decl(duration="2h").window(T0) == (T0, T0 + 7200)
    assert decl(starts_at="2027-01-15T08:00:00Z", duration=60).window(0) == (T0, T0 + 60)
    explicit = decl(starts_at="2027-01-15T08:00:00", ends_at="2027-01-15T09:00:00+00:00")
    assert explicit.window(0) == (T0, T0 + 3600)  # no offset means UTC
    assert decl(event="pr.*", when=[{"field": "payload.env", "op": "eq", "value": "prod"}], duration=1).matchers() == \
        SilenceMatchers("pr.*", parse_conditions([{"field": "payload.env", "op": "eq", "value": "prod"}]))


@pytest.mark.parametrize(("raw", "message"), [
    ({"duration": "1h", "comment": None}, "silences[0].comment: Input should be a valid string"),
    ({"duration": "1h", "comment": ""}, "silences[0].comment: String should have at least 1 character"),
    ({"duration": "1h", "comment": "x" * 1001}, "silences[0].comment: String should have at most 1000"),
    ({}, "silences[0].duration: give ends_at or duration"),
    ({"duration": "1h", "ends_at": "2027-01-01T00:00:00Z"}, "silences[0].duration: give ends_at or duration, not"),
    ({"duration": "91d"}, "silences[0].duration: duration must be more than 0 and at most 90 days"),
    ({"duration": "0s"}, "silences[0].duration: duration must be more than 0"),
    ({"duration": "soon"}, "silences[0].duration: invalid duration 'soon'"),
    ({"starts_at": "2027-01-02T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"},
     "silences[0].ends_at: ends_at must be after starts_at"),
    ({"starts_at": "2027-01-01T00:00:00Z", "ends_at": "2027-06-01T00:00:00Z"},
     "silences[0].ends_at: a silence lasts at most 90 days"),
    ({"duration": "1h", "event": "PR.*"}, "silences[0].event: 'PR.*' is not an event name"),
    ({"duration": "1h", "when": [{"field": "env", "op": "eq", "value": 1}]},
     "silences[0].when: when[0]: field 'env' must start with payload"),
    ({"duration": "1h", "any": [[{"field": "payload.h", "op": "matches", "value": "("}]]},
     "silences[0].any: any[0][0]: invalid regex"),
    ({"duration": "1h", "matchers": {}}, "silences[0].matchers: Extra inputs are not permitted"),
])
def test_a_bad_declaration_is_one_line_naming_the_field(raw, message):
    with pytest.raises(ValidationError) as caught:
        SilenceDecl.model_validate({"comment": "why", **raw})
    assert describe_validation_error(caught.value, "silences[0]").startswith(message)


# ---- in the store (real SQLite) -----------------------------------------------------------------


@pytest.fixture
async def store(tmp_path):
    s = Store(tmp_path / "alertd.db", "normal")
    await s.open()
    yield s
    await s.close()


async def test_config_silences_keep_their_row_and_window_across_reloads(store):
    book = SilenceBook()
    declared = [decl(event="pr.*", duration="2h"), decl(event="deploy.*", duration="1h", comment="freeze")]
    first_ids = await silence_ops.apply_config(book, store, declared)
    rows = {s.id: s for s in await silence_ops.list_silences(store.read, "all", T0)}
    again = await silence_ops.apply_config(book, store, declared)  # a SIGHUP or restart with the same TOML

    assert again == first_ids and len(first_ids) == 2 and all(i > 0 for i in first_ids)
    assert {s.id: s for s in await silence_ops.list_silences(store.read, "all", T0)} == rows
    assert {s.managed for s in rows.values()} == {"config"}
    assert [s.id for s in book.current().silences] == first_ids


async def test_a_config_silence_removed_from_the_file_is_expired_and_a_changed_one_is_new(store):
    book = SilenceBook()
    kept, dropped = await silence_ops.apply_config(book, store, [decl(duration="2h"), decl(duration="3h")])
    [changed] = await silence_ops.apply_config(book, store, [decl(duration="2h", comment="other reason")])
    [back] = await silence_ops.apply_config(book, store, [decl(duration="2h", comment="other reason")])

    assert changed not in (kept, dropped) and back == changed
    everything = {s.id: s for s in await silence_ops.list_silences(store.read, "all", 0)}
    assert everything[kept].expired_at is not None and everything[dropped].expired_at is not None
    assert [s.id for s in book.current().silences] == [changed]


async def test_only_an_api_silence_can_be_expired_and_only_once(store):
    book = SilenceBook()
    [config_id] = await silence_ops.apply_config(book, store, [decl(duration="1h")])
    api_id = await store.writer.submit(lambda c: silence_ops.insert_silence(c, decl(duration="1h"), "api", T0))
    assert await store.writer.submit(lambda c: silence_ops.expire_silence(c, config_id, T0)) is False
    assert await store.writer.submit(lambda c: silence_ops.expire_silence(c, api_id, T0)) is True
    assert await store.writer.submit(lambda c: silence_ops.expire_silence(c, api_id, T0 + 1)) is False
    expired = await silence_ops.get_silence(store.read, api_id)
    assert expired is not None and expired.expired_at == T0


async def test_listing_by_state(store):
    now = T0
    for raw in [{"starts_at": "2027-01-15T08:00:00Z", "duration": "1h"},      # active at T0 + 1
                {"starts_at": "2027-01-15T09:00:00Z", "duration": "1h"},      # pending
                {"starts_at": "2027-01-15T06:00:00Z", "duration": "1h"}]:     # over
        await store.writer.submit(lambda c, raw=raw: silence_ops.insert_silence(c, decl(**raw), "api", now))

    async def ids(state: Any) -> list[int]:
        return [s.id for s in await silence_ops.list_silences(store.read, state, T0 + 1)]

    assert (await ids("active"), await ids("pending"), await ids("expired")) == ([1], [2], [3])
    assert await ids("current") == [2, 1] and await ids("all") == [3, 2, 1]


class OfferLog:
    def __init__(self) -> None:
        self.offered: list[int] = []

    def offer(self, jobs: Any) -> None:
        self.offered.extend(job.delivery.id for job in jobs)


async def test_a_silenced_event_has_every_delivery_skipped_with_the_silence_id(store):
    book = SilenceBook()
    table = RouteTable([Route("db", "db.*", ("pager", "chat")), Route("windowed", "*", ("pager",),
                                                                        suppress_for=60.0, dedup_key="{event}")])
    offers = OfferLog()
    ingest = Ingest(store, offers, lambda: table, compile_sensitive([]), book.current)  # type: ignore[arg-type]
    silence_id = await store.writer.submit(lambda c: silence_ops.insert_silence(
        c, decl(event="db.*", when=[{"field": "payload.host", "op": "matches", "value": "^db-"}], duration="1h"),
        "api", time.time() - 1))
    await silence_ops.refresh(book, store.read)

    [muted] = await ingest.accept([Envelope("db.down", {"host": "db-1"}, Severity.CRITICAL)], "p")
    [loud] = await ingest.accept([Envelope("db.down", {"host": "web-1"}, Severity.CRITICAL)], "p")

    assert muted.deliveries == 0 and loud.deliveries == 2
    rows = await store.read.deliveries_for_event(muted.id)
    assert [(d.channel, d.state, d.reason, d.reason_ref, d.attempts) for d in rows] == [
        ("pager", DeliveryState.SKIPPED, "silenced", silence_id, 0),
        ("chat", DeliveryState.SKIPPED, "silenced", silence_id, 0)]
    assert not set(offers.offered) & {d.id for d in rows}
    # the silenced event opened no dedup window: the next matching event went out
    assert [d.state for d in await store.read.deliveries_for_event(loud.id)] == [DeliveryState.PENDING] * 2


async def test_expiring_a_silence_lets_events_through_at_once(store):
    book = SilenceBook()
    table = RouteTable([Route("all", "*", ("pager",))])
    ingest = Ingest(store, OfferLog(), lambda: table, compile_sensitive([]), book.current)  # type: ignore[arg-type]
    now = time.time()
    silence_id = await store.writer.submit(lambda c: silence_ops.insert_silence(c, decl(duration="1h"), "api", now))
    await silence_ops.refresh(book, store.read)
    [before] = await ingest.accept([Envelope("a", {}, Severity.INFO)], "p")
    await store.writer.submit(lambda c: silence_ops.expire_silence(c, silence_id, now))
    await silence_ops.refresh(book, store.read)
    [after] = await ingest.accept([Envelope("a", {}, Severity.INFO)], "p")
    assert (before.deliveries, after.deliveries) == (0, 1)


async def test_concurrent_refreshes_never_leave_an_older_view_in_force(store):
    book = SilenceBook()
    now = time.time()

    async def add_and_refresh() -> None:
        await store.writer.submit(lambda c: silence_ops.insert_silence(c, decl(duration="1h"), "api", now))
        await silence_ops.refresh(book, store.read)

    await asyncio.gather(*(add_and_refresh() for _ in range(20)))
    assert len(book.current()) == 20


async def test_dedup_rows_whose_window_closed_are_purged(store):
    await store.writer.submit(lambda c: c.executemany("INSERT INTO dedup VALUES (?, ?, ?, ?)",
                                                      [("r", "old", 1, T0 - 1), ("r", "open", 2, T0 + 60)]))
    assert await store.writer.submit(lambda c: silence_ops.purge_dedup(c, T0)) == 1
    assert [r[0] for r in await store.read._all("SELECT key FROM dedup")] == ["open"]


# ---- the CLI's parsing (no daemon) --------------------------------------------------------------


def cli_args(*argv: str) -> Any:
    parser = argparse.ArgumentParser()
    silence_cli.register(parser.add_subparsers())
    return parser.parse_args(["silence", *argv])


def test_the_cli_builds_the_body_from_where_and_match():
    args = cli_args("add", "--event", "pr.*", "--where", "payload.env=prod", "--where", "payload.code=500",
                    "--where", "payload.tag=[1]", "--match", "payload.host=~^db-[0-9]+=x$", "--duration", "2h",
                    "--comment", "deploy freeze")
    body = silence_cli.body_of(args)
    assert body == {"event": "pr.*", "comment": "deploy freeze", "duration": "2h", "when": [
        {"field": "payload.env", "op": "eq", "value": "prod"},
        {"field": "payload.code", "op": "eq", "value": 500},
        {"field": "payload.tag", "op": "eq", "value": "[1]"},
        {"field": "payload.host", "op": "matches", "value": "^db-[0-9]+=x$"}]}
    SilenceDecl.model_validate(body)  # what the CLI sends, the API takes


@pytest.mark.parametrize(("argv", "fragment"), [
    (["add", "--comment", "x"], "give --duration"),
    (["add", "--comment", "x", "--duration", "1h", "--ends-at", "2030-01-01T00:00:00Z"], "give --duration"),
    (["add", "--comment", "x", "--duration", "1h", "--where", "payload.env"], "--where 'payload.env'"),
    (["add", "--comment", "x", "--duration", "1h", "--match", "payload.env=prod"], "--match 'payload.env=prod'"),
])
def test_bad_cli_input_is_refused_before_any_request(argv, fragment):
    with pytest.raises(CliError) as caught:
        silence_cli.body_of(cli_args(*argv))
    assert fragment in str(caught.value)


def test_expire_needs_yes():
    with pytest.raises(CliError, match="--yes"):
        silence_cli.cmd_expire(cli_args("expire", "12"))
