"""Sessions, CSRF tokens and the sign-in throttle, on a fake clock."""

from __future__ import annotations

import pytest

from alertd.ui.sessions import Sessions, SignInThrottle, same_token
from alertd.ui.web import ago, percent, safe_next, span, when


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_session_id_is_32_random_bytes_and_only_its_hash_is_kept(clock):
    sessions = Sessions(clock)
    token, session = sessions.create("admin", "ab" * 32)
    other, _ = sessions.create("admin", "ab" * 32)
    assert len(token) == 43 and token != other  # base64url of 32 bytes
    assert sessions.get(token) is session
    assert token not in repr(sessions._by_digest)


def test_an_unknown_or_absent_cookie_has_no_session(clock):
    sessions = Sessions(clock)
    sessions.create("admin", "x")
    assert sessions.get(None) is None
    assert sessions.get("") is None
    assert sessions.get("not-a-session") is None
    assert sessions.get("x" * 500) is None


def test_a_session_ends_after_being_idle_and_use_keeps_it_alive(clock):
    sessions = Sessions(clock, idle_s=100, absolute_s=1000)
    token, _ = sessions.create("admin", "x")
    clock.now += 99
    assert sessions.get(token) is not None  # used: the idle timer starts again
    clock.now += 99
    assert sessions.get(token) is not None
    clock.now += 100
    assert sessions.get(token) is None
    assert len(sessions) == 0


def test_a_session_ends_at_its_absolute_lifetime_however_busy(clock):
    sessions = Sessions(clock, idle_s=100, absolute_s=250)
    token, _ = sessions.create("admin", "x")
    for _ in range(4):
        clock.now += 60
        assert sessions.get(token) is not None
    clock.now += 10
    assert sessions.get(token) is None


def test_sign_out_drops_the_session_and_the_table_is_bounded(clock):
    sessions = Sessions(clock, limit=3)
    first, _ = sessions.create("a", "x")
    tokens = [sessions.create("a", "x")[0] for _ in range(3)]
    assert sessions.get(first) is None  # the oldest made room
    sessions.drop(tokens[0])
    assert sessions.get(tokens[0]) is None and sessions.get(tokens[1]) is not None
    assert len(sessions) == 2


def test_each_session_has_its_own_csrf_token_checked_in_constant_time(clock):
    sessions = Sessions(clock)
    _, one = sessions.create("a", "x")
    _, two = sessions.create("a", "x")
    assert one.csrf != two.csrf and len(one.csrf) >= 40
    assert one.csrf_ok(one.csrf)
    assert not one.csrf_ok(two.csrf)
    assert not one.csrf_ok(None)
    assert not one.csrf_ok("")
    assert not one.csrf_ok(one.csrf[:-1])
    assert not one.csrf_ok("é" + one.csrf)  # non-ASCII does not raise
    assert not same_token("abc", 123)  # type: ignore[arg-type]


def test_flash_messages_are_shown_once_and_bounded(clock):
    _, session = Sessions(clock).create("a", "x")
    for i in range(8):
        session.flash("ok", f"m{i}")
    assert [t for _, t in session.take_flashes()] == ["m3", "m4", "m5", "m6", "m7"]
    assert session.take_flashes() == []


def test_the_throttle_refuses_a_sixth_failure_within_a_minute(clock):
    throttle = SignInThrottle(clock, limit=5, window_s=60)
    for _ in range(4):
        throttle.failed("10.0.0.1")
        clock.now += 1
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    wait = throttle.retry_after("10.0.0.1")
    assert wait is not None and 55 < wait <= 60
    assert throttle.retry_after("10.0.0.2") is None  # per address
    clock.now += 57
    assert throttle.retry_after("10.0.0.1") is None  # the oldest failure left the window


def test_a_successful_sign_in_clears_the_failures(clock):
    throttle = SignInThrottle(clock, limit=2)
    throttle.failed("a")
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.retry_after("a") is None


def test_the_throttle_forgets_addresses_rather_than_grow_without_bound(clock):
    throttle = SignInThrottle(clock, limit=1, max_addresses=3)
    for address in "abcde":
        throttle.failed(address)
    assert len(throttle._failures) <= 3
    assert throttle.retry_after("e") is not None


@pytest.mark.parametrize(("value", "expected"), [
    ("/ui/events?event=pr.*", "/ui/events?event=pr.*"),
    ("/ui", "/ui"),
    ("https://evil.example/", "/ui"),
    ("//evil.example/ui", "/ui"),
    ("/ui//evil.example", "/ui"),
    ("/ui/\\evil", "/ui"),
    ("/v1/admin/keys", "/ui"),
    ("/ui/x\r\nSet-Cookie: a=b", "/ui"),
    (None, "/ui"),
    # a control character in a Location header made aiohttp drop the connection, the session cookie with it
    ("/ui\x0b", "/ui"), ("/ui\x00x", "/ui"), ("/ui\x7f", "/ui"), ("/ui/é", "/ui"),
])
def test_after_sign_in_only_a_ui_path_is_followed(value, expected):
    assert safe_next(value) == expected


@pytest.mark.parametrize(("seconds", "shown"), [(3600, "1h"), (90, "90s"), (5400, "90m"), (86400 * 2, "2d"),
                                                (0.5, "0.5s"), (None, "—")])
def test_durations_are_shown_as_the_config_writes_them(seconds, shown):
    assert span(seconds) == shown


def test_times_are_shown_relative_and_absolute():
    assert ago(1000.0, now=1090.0) == "1m ago" and ago(1000.0, now=900.0) == "in 1m" and ago(None) == "—"
    assert when(0.0) == "1970-01-01 00:00:00 UTC"
    assert percent(0.5) == "50.0%" and percent(0.99999) == "99.9%" and percent(1.0) == "100%"
