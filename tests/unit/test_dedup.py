import asyncio
import hashlib
from typing import Any

import pytest

from alertd.dedup import DedupKeyError, compile_dedup_key
from alertd.ingest import Ingest, RouteTable
from alertd.model import DeliveryState, Envelope, Event, Severity, new_event_id
from alertd.redact import compile_sensitive
from alertd.routing import Route, sort_routes
from alertd.store import NewEvent, Store
from alertd.store.ops import DedupClaim

# ---- key templates (pure) -----------------------------------------------------------------------


def render(template: str, payload: dict[str, Any], event: str = "pr.run.failed",
           severity: Severity = Severity.ERROR) -> str:
    return compile_dedup_key(template)(event, severity, payload)


@pytest.mark.parametrize(("template", "payload", "expected"), [
    ("{event}", {}, "pr.run.failed"),
    ("{event}:{payload.cue_id}", {"cue_id": "c-7"}, "pr.run.failed:c-7"),
    ("{severity}/{payload.a.b}", {"a": {"b": 3}}, "error/3"),
    ("{payload.items.1.id}", {"items": [{"id": "x"}, {"id": "y"}]}, "y"),
    ("{payload.flag}|{payload.ratio}|{payload.none}", {"flag": True, "ratio": 1.5, "none": None}, "true|1.5|"),
    ("{payload.obj}", {"obj": {"b": 1, "a": [2]}}, '{"a":[2],"b":1}'),
    ("{{literal}}-{event}", {}, "{literal}-pr.run.failed"),
    ("{payload.host:port}/{payload.a b}", {"host:port": "db:5432", "a b": "c"}, "db:5432/c"),
])
def test_a_key_renders_event_severity_and_payload_paths(template, payload, expected):
    assert render(template, payload) == expected


@pytest.mark.parametrize("payload", [{}, {"cue_id": {"deeper": 1}}, {"a": "not a table"}, {"a": [1]}])
def test_a_missing_path_renders_as_empty(payload):
    assert render("k:{payload.a.b}:{payload.cue_id.x}", payload) == "k::"


def test_a_key_longer_than_500_characters_is_stored_as_its_sha256():
    long_value = "x" * 600
    key = render("{payload.v}", {"v": long_value})
    assert key == "sha256:" + hashlib.sha256(long_value.encode()).hexdigest()
    assert render("{payload.v}", {"v": "x" * 500}) == "x" * 500


@pytest.mark.parametrize(("template", "fragment"), [
    ("{payload}", "unknown placeholder"),
    ("{event.name}", "unknown placeholder"),
    ("{source}", "unknown placeholder"),
    ("{}", "unknown placeholder"),
    ("{payload.a..b}", "a path is"),
    ("{payload.a.}", "a path is"),
    ("{event", "unbalanced"),
    ("event}", "unbalanced"),
    ("", "non-empty"),
    ("x" * 501, "longer than 500"),
])
def test_a_bad_template_is_refused_with_the_reason(template, fragment):
    with pytest.raises(DedupKeyError, match=fragment):
        compile_dedup_key(template)


# ---- windows in the store (real SQLite) ---------------------------------------------------------


@pytest.fixture
async def store(tmp_path):
    s = Store(tmp_path / "alertd.db", "normal")
    await s.open()
    yield s
    await s.close()


class OfferLog:
    def __init__(self) -> None:
        self.offered: list[int] = []

    def offer(self, jobs: Any) -> None:
        self.offered.extend(job.delivery.id for job in jobs)


def window_route(name: str = "cues", channels: tuple[str, ...] = ("pager",), match: str = "cue.*",
                 key: str = "{event}:{payload.cue_id}", window: float = 300.0) -> Route:
    return Route(name, match, channels, suppress_for=window, dedup_key=key)


def make_ingest(store: Store, *routes: Route) -> tuple[Ingest, OfferLog]:
    offers = OfferLog()
    table = RouteTable(sort_routes(routes))
    return Ingest(store, offers, lambda: table, compile_sensitive([])), offers  # type: ignore[arg-type]


def cue(cue_id: str = "c1", name: str = "cue.missed") -> Envelope:
    return Envelope(name, {"cue_id": cue_id}, Severity.ERROR)


async def deliveries_of(store: Store, event_id: str) -> list[tuple[str, str, str | None, int | None]]:
    return [(d.channel, d.state.value, d.reason, d.reason_ref) for d in await store.read.deliveries_for_event(event_id)]


async def test_a_window_skips_repeats_and_points_them_at_the_delivery_that_went_out(store):
    ingest, offers = make_ingest(store, window_route())
    [first] = await ingest.accept([cue()], "p")
    [second] = await ingest.accept([cue()], "p")
    [other_key] = await ingest.accept([cue("c2")], "p")

    [sent] = await store.read.deliveries_for_event(first.id)
    assert first.deliveries == 1 and second.deliveries == 0 and other_key.deliveries == 1
    assert await deliveries_of(store, second.id) == [("pager", "skipped", "suppressed", sent.id)]
    skipped = (await store.read.deliveries_for_event(second.id))[0]
    assert skipped.attempts == 0 and skipped.id not in offers.offered
    assert sent.id in offers.offered and len(offers.offered) == 2


async def test_after_the_window_a_new_delivery_goes_out_and_opens_the_next_window(store):
    ingest, offers = make_ingest(store, window_route())
    await ingest.accept([cue()], "p")
    await store.writer.submit(lambda c: c.execute("UPDATE dedup SET until = until - 301"))
    [later] = await ingest.accept([cue()], "p")
    [again] = await ingest.accept([cue()], "p")

    assert later.deliveries == 1 and again.deliveries == 0
    [sent_later] = await store.read.deliveries_for_event(later.id)
    assert sent_later.state is DeliveryState.PENDING
    assert await deliveries_of(store, again.id) == [("pager", "skipped", "suppressed", sent_later.id)]
    assert len(offers.offered) == 2


async def test_a_channel_also_reached_by_a_route_without_a_window_still_gets_its_delivery(store):
    ingest, _ = make_ingest(store, window_route(channels=("pager", "chat")),
                            Route("all-to-chat", "*", ("chat",)))
    [first] = await ingest.accept([cue()], "p")
    [second] = await ingest.accept([cue()], "p")

    sent = {d.channel: d.id for d in await store.read.deliveries_for_event(first.id)}
    assert second.deliveries == 1
    assert await deliveries_of(store, second.id) == [
        ("pager", "skipped", "suppressed", sent["pager"]), ("chat", "pending", None, None)]


async def test_two_routes_to_one_channel_one_of_them_suppressing_make_one_normal_delivery(store):
    ingest, offers = make_ingest(store, window_route(channels=("pager",)), Route("plain", "cue.*", ("pager",)))
    [first] = await ingest.accept([cue()], "p")
    [second] = await ingest.accept([cue()], "p")

    assert (first.deliveries, second.deliveries) == (1, 1)
    assert await deliveries_of(store, second.id) == [("pager", "pending", None, None)]
    assert len(offers.offered) == 2


async def test_a_skipped_delivery_on_a_second_channel_refers_to_that_channels_delivery(store):
    ingest, _ = make_ingest(store, window_route(channels=("pager", "chat")))
    # both in one call: the first event's rows are not inserted yet when the second is decided
    first, second = await ingest.accept([cue(), cue()], "p")
    [third] = await ingest.accept([cue()], "p")

    sent = {d.channel: d.id for d in await store.read.deliveries_for_event(first.id)}
    expected = [("pager", "skipped", "suppressed", sent["pager"]), ("chat", "skipped", "suppressed", sent["chat"])]
    assert await deliveries_of(store, second.id) == expected
    assert await deliveries_of(store, third.id) == expected


async def test_two_windowed_routes_to_one_channel_suppress_only_when_both_are_closed(store):
    by_cue = window_route("by-cue", channels=("pager",))
    by_event = window_route("by-event", channels=("pager",), key="{event}")
    ingest, _ = make_ingest(store, by_cue, by_event)
    [first] = await ingest.accept([cue("c1")], "p")
    [other_cue] = await ingest.accept([cue("c2")], "p")  # by-event suppresses, by-cue opens c2: it goes out
    [repeat] = await ingest.accept([cue("c2")], "p")

    assert (first.deliveries, other_cue.deliveries, repeat.deliveries) == (1, 1, 0)
    [ref] = await store.read.deliveries_for_event(other_cue.id)
    assert await deliveries_of(store, repeat.id) == [("pager", "skipped", "suppressed", ref.id)]


async def test_fifty_concurrent_identical_events_make_one_delivery_and_49_skipped(store):
    ingest, offers = make_ingest(store, window_route())
    results = await asyncio.gather(*(ingest.accept([cue()], "p") for _ in range(50)))

    counts = sorted(r[0].deliveries for r in results)
    assert counts == [0] * 49 + [1]
    sent_event = next(r[0].id for r in results if r[0].deliveries == 1)
    [sent] = await store.read.deliveries_for_event(sent_event)
    skipped = [d for r in results if r[0].deliveries == 0 for d in await store.read.deliveries_for_event(r[0].id)]
    assert len(skipped) == 49
    assert {(d.state, d.reason, d.reason_ref) for d in skipped} == {(DeliveryState.SKIPPED, "suppressed", sent.id)}
    assert offers.offered == [sent.id]


async def test_a_duplicate_idempotency_key_neither_claims_nor_is_suppressed(store):
    ingest, _ = make_ingest(store, window_route())
    keyed = Envelope("cue.missed", {"cue_id": "c1"}, Severity.ERROR, "k1")
    [first] = await ingest.accept([keyed], "p")
    [dup] = await ingest.accept([keyed], "p")
    assert dup.duplicate and dup.id == first.id and len(await store.read.deliveries_for_event(first.id)) == 1


async def test_dedup_keys_render_from_the_redacted_payload(store):
    ingest, _ = make_ingest(store, window_route(key="{payload.password}"))
    ingest.sensitive = compile_sensitive(["password"])
    await ingest.accept([Envelope("cue.x", {"password": "hunter2"}, Severity.INFO)], "p")
    keys = await store.read._all("SELECT key FROM dedup")
    assert [k[0] for k in keys] == ["[redacted]"]


async def test_a_plain_new_event_is_stored_as_before(store):
    event = Event(new_event_id(), "a", Severity.INFO, {}, 1.0, "p")
    [stored] = await store.insert_events([NewEvent(event, ("x", "y"))])
    assert [d.state for d in stored.deliveries] == [DeliveryState.PENDING] * 2 and stored.skipped == []


async def test_a_claim_decides_in_the_store_whatever_builds_the_new_event(store):
    def item() -> NewEvent:
        event = Event(new_event_id(), "cue.x", Severity.INFO, {}, 1.0, "scheduler")
        return NewEvent(event, ("x",), (DedupClaim("r", "k", 60.0, ("x",)),))

    [a] = await store.insert_events([item()])
    [b] = await store.insert_events([item()])
    assert len(a.deliveries) == 1 and b.deliveries == []
    assert [(d.reason, d.reason_ref) for d in b.skipped] == [("suppressed", a.deliveries[0].id)]
