from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from alertd.checks import (
    CheckDecl,
    CheckState,
    deadline_after,
    on_deadline,
    on_ping,
    on_runtime_deadline,
    pause,
    resume,
)

T0 = 1_800_000_000.0


def heartbeat(**kw) -> CheckDecl:
    return CheckDecl(name="nightly.backup", period="1h", grace="5m", **kw)


def test_the_first_ping_brings_a_new_check_up_and_arms_its_deadline():
    t = on_ping(heartbeat(), CheckState(), "success", T0)
    assert t.state.state == "up" and t.state.deadline_at == T0 + 3600 + 300 and t.emits == ()


def test_a_passed_deadline_takes_it_down_once():
    spec = heartbeat()
    up = on_ping(spec, CheckState(), "success", T0).state
    assert on_deadline(spec, up, T0 + 3899).state is up
    down = on_deadline(spec, up, T0 + 3900)
    assert down.state.state == "down" and [e.name for e in down.emits] == ["alertd.check.down"]
    assert on_deadline(spec, down.state, T0 + 99999).emits == ()


def test_a_ping_after_down_brings_it_up_with_an_event():
    spec = heartbeat()
    down = on_deadline(spec, on_ping(spec, CheckState(), "success", T0).state, T0 + 4000).state
    up = on_ping(spec, down, "success", T0 + 5000)
    assert up.state.state == "up" and [e.name for e in up.emits] == ["alertd.check.up"]


def test_failures_alert_at_the_threshold_and_a_success_breaks_the_streak():
    spec = heartbeat(failure_threshold=3)
    st = CheckState()
    names = []
    for n in range(4):
        t = on_ping(spec, st, "fail", T0 + n)
        st = t.state
        names.append([e.name for e in t.emits])
    assert names == [[], [], ["alertd.check.failing"], []] and st.fail_streak == 4
    st = on_ping(spec, st, "success", T0 + 10).state
    assert st.fail_streak == 0
    assert on_ping(spec, on_ping(spec, st, "fail", T0 + 11).state, "fail", T0 + 12).emits == ()


def test_a_started_run_that_overruns_max_runtime_alerts():
    spec = heartbeat(max_runtime="10m")
    running = on_ping(spec, CheckState(), "start", T0).state
    assert running.state == "running" and running.runtime_deadline_at == T0 + 600
    t = on_runtime_deadline(spec, running, T0 + 600)
    assert [e.name for e in t.emits] == ["alertd.check.runtime_exceeded"] and t.state.runtime_deadline_at is None
    assert on_ping(spec, running, "success", T0 + 100).state.runtime_deadline_at is None


def test_a_paused_check_neither_alerts_nor_recovers_and_resumes_as_new():
    spec = heartbeat()
    paused = pause(on_ping(spec, CheckState(), "success", T0).state)
    assert paused.deadline_at is None and on_deadline(spec, paused, T0 + 99999).emits == ()
    assert on_ping(spec, paused, "success", T0 + 1).state is paused
    assert resume(paused).state == "new"


def test_cron_deadlines_follow_the_schedule_in_its_time_zone():
    spec = CheckDecl(name="report", cron="0 3 * * *", tz="Europe/Berlin", grace="10m")
    after = datetime(2026, 3, 28, 12, 0, tzinfo=UTC).timestamp()
    # 03:00 Berlin on 29 March 2026 is 01:00 UTC (summer time starts that night)
    assert deadline_after(spec, after) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp() + 600


@pytest.mark.parametrize(("fields", "fragment"), [
    ({}, "exactly one of period"),
    ({"period": "1h", "cron": "* * * * *"}, "exactly one of period"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "time zone"),
    ({"period": "0s"}, "between 1s"),
    ({"period": "1h", "failure_threshold": 0}, "failure_threshold"),
    ({"period": "1h", "severity": "loud"}, "severity"),
    ({"period": "1h", "colour": "red"}, "colour"),
])
def test_bad_check_declarations_are_refused(fields, fragment):
    with pytest.raises(ValidationError, match=fragment):
        CheckDecl(name="x", **fields)
