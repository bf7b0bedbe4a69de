import random
from datetime import UTC, datetime

import pytest

from alertd.durations import iso, parse_duration, parse_instant, parse_timestamp
from alertd.ratelimit import TokenBucket
from alertd.retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("10s", 10), ("5m", 300), ("1h", 3600), ("7d", 604800), ("1.5s", 1.5), (3, 3), (0.5, 0.5),
])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "-1s", "10x", "1e9", "9" * 50, True, 10**12])
def test_bad_durations_are_refused_with_a_hint(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_instants_are_durations_ago_or_iso_times():
    assert parse_instant("1h", 10_000.0) == 6_400.0
    assert parse_instant("2026-01-01T00:00:00Z", 0) == 1767225600.0
    assert parse_instant("2026-01-01T00:00:00", 0) == 1767225600.0
    with pytest.raises(ValueError, match="invalid time"):
        parse_instant("yesterday-ish", 0)
    assert iso(1767225600.0) == "2026-01-01T00:00:00.000Z"


def test_backoff_is_full_jitter_capped_and_grows():
    policy = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=600.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (10, 512), (11, 600), (30, 600)]:
        delays = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8


def test_retry_after_is_the_earliest_next_attempt_even_past_the_cap():
    policy = RetryPolicy(base_s=1.0, cap_s=10.0)
    assert policy.delay(1, retry_after=120.0, rng=random.Random(1)) == 120.0
    assert policy.should_retry(4) and not policy.should_retry(5)


@pytest.mark.parametrize(("header", "expected"), [
    ("30", 30.0), (" 7 ", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (None, None), ("soon", None),
    ("-5", None), ("9" * 80, None), ("²", None), ("٣٠", None), ("１０", None),  # digits to str.isdigit, not to float
])
def test_retry_after_header_forms(header, expected):
    assert parse_retry_after(header, now=1445412480.0 + 60) == expected


def test_retry_after_http_date_in_the_future():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 90) == 90.0


def test_token_bucket_spaces_sends_at_its_rate():
    bucket = TokenBucket(rate=2.0, burst=2.0)
    assert bucket.take(100.0) == 0 and bucket.take(100.0) == 0
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.0) == pytest.approx(1.0)
    assert bucket.take(102.0) == 0


@pytest.mark.parametrize("text", ["9999-12-31T23:00:00Z", "9000-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                  "0001-01-01T00:00:00Z"])
def test_a_timestamp_outside_what_alertd_stores_is_refused(text):
    with pytest.raises(ValueError, match="between 1970 and the year 9000"):
        parse_timestamp(text)


def test_the_bounds_themselves_and_a_far_but_sane_time_parse():
    assert parse_timestamp("1970-01-01T00:00:00Z") == 0
    assert iso(parse_timestamp("8999-12-31T23:59:59Z")) == "8999-12-31T23:59:59.000Z"


def test_iso_never_raises_for_a_row_stored_before_times_were_bounded():
    assert iso(datetime(9999, 12, 31, 23, tzinfo=UTC).timestamp() + 2 * 3600) == "9999-12-31T23:59:59.999Z"
    assert iso(1e300) == "9999-12-31T23:59:59.999Z"
