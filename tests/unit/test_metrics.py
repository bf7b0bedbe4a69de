"""The metrics hooks and the scrape-time gauges, read back through Prometheus' own text parser."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alertd.checks import CheckState
from alertd.metrics import CHECK_STATES, NO_METRICS, Metrics
from alertd.model import DeliveryState, Severity


def samples(metrics: Metrics, due_backlog: int | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render(due_backlog=due_backlog).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


@dataclass
class FakeQueue:
    depth: dict[str, int] = field(default_factory=lambda: {s.label: 0 for s in Severity})
    in_flight: int = 0

    def depth_by_severity(self) -> dict[str, int]:
        return dict(self.depth)


@dataclass
class FakeCheck:
    state: CheckState


@dataclass
class FakeScheduler:
    checks: dict[str, FakeCheck] = field(default_factory=dict)


def test_each_daemon_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()  # the global registry would refuse the second set of names
    first.event_ingested(Severity.ERROR, False)
    assert value(samples(first), "alertd_events_ingested_total", severity="error") == 1
    assert value(samples(second), "alertd_events_ingested_total", severity="error") == 0


def test_ingest_counts_by_severity_and_duplicates_apart() -> None:
    m = Metrics(process=False)
    for severity in (Severity.INFO, Severity.CRITICAL, Severity.CRITICAL):
        m.event_ingested(severity, False)
    m.event_ingested(Severity.CRITICAL, True)
    found = samples(m)
    assert {s.label: value(found, "alertd_events_ingested_total", severity=s.label) for s in Severity} == {
        "info": 1, "warning": 0, "error": 0, "critical": 2}
    assert value(found, "alertd_ingest_duplicates_total") == 1


def test_attempts_count_outcomes_and_the_states_failures_leave() -> None:
    m = Metrics(process=False)
    m.attempt_finished("ops-hook", "webhook", "failed", DeliveryState.RETRYING, 0.2)
    m.attempt_finished("ops-hook", "webhook", "failed", DeliveryState.DEAD, 0.3)
    m.attempt_finished("ops-hook", "webhook", "delivered", DeliveryState.DELIVERED, 0.05)
    m.attempt_finished("ops-mail", "email", "delivered", DeliveryState.DELIVERED, 1.5)
    found = samples(m)
    hook = {"channel": "ops-hook", "type": "webhook"}
    outcomes = {o: value(found, "alertd_deliveries_total", **hook, outcome=o)
                for o in ("delivered", "failed", "retrying", "dead")}
    assert outcomes == {"delivered": 1, "failed": 2, "retrying": 1, "dead": 1}
    assert value(found, "alertd_delivery_attempts_total", **hook) == 3
    assert value(found, "alertd_delivery_duration_seconds_count", **hook) == 3
    assert value(found, "alertd_delivery_duration_seconds_sum", **hook) == pytest.approx(0.55)
    assert value(found, "alertd_delivery_duration_seconds_bucket", **hook, le="0.1") == 1
    assert value(found, "alertd_deliveries_total", channel="ops-mail", type="email", outcome="delivered") == 1


def test_a_channels_labelled_series_are_looked_up_once() -> None:
    m = Metrics(process=False)
    series = m._series("ops-hook", "webhook")
    assert m._series("ops-hook", "webhook") is series
    assert m._series("ops-hook", "slack") is not series  # a channel redeclared with another type


def test_a_delivery_for_a_channel_gone_from_the_config_counts_dead_with_an_unknown_type() -> None:
    m = Metrics(process=False)
    m.dead_unconfigured("removed")
    assert value(samples(m), "alertd_deliveries_total", channel="removed", type="unknown", outcome="dead") == 1
    # the attempt row it gets is counted as a failed attempt: delivered + failed is the number of attempts
    assert value(samples(m), "alertd_deliveries_total", channel="removed", type="unknown", outcome="failed") == 1
    assert value(samples(m), "alertd_delivery_attempts_total", channel="removed", type="unknown") == 1


def test_ingest_latency_and_commits_are_histograms() -> None:
    m = Metrics(process=False)
    m.ingest_finished(0.004)
    # the writer reports from its own thread
    writer = threading.Thread(target=lambda: [m.store_committed(0.002, n) for n in (1, 40, 700)])
    writer.start()
    writer.join()
    found = samples(m)
    assert value(found, "alertd_ingest_latency_seconds_count") == 1
    assert value(found, "alertd_ingest_latency_seconds_bucket", le="0.005") == 1
    assert value(found, "alertd_store_commit_seconds_count") == 3
    assert value(found, "alertd_store_commit_batch_size_sum") == 741
    assert value(found, "alertd_store_commit_batch_size_bucket", le="50.0") == 2


def test_queue_and_checks_are_read_when_scraped() -> None:
    m = Metrics(process=False)
    queue = FakeQueue(in_flight=3)
    scheduler = FakeScheduler({"a": FakeCheck(CheckState("up")), "b": FakeCheck(CheckState("down")),
                               "c": FakeCheck(CheckState("down"))})
    m.watch(queue, scheduler)
    queue.depth["critical"] = 7
    found = samples(m, due_backlog=12)
    assert value(found, "alertd_queue_depth", severity="critical") == 7
    assert value(found, "alertd_queue_depth", severity="info") == 0
    assert value(found, "alertd_in_flight") == 3
    assert value(found, "alertd_due_backlog") == 12
    assert {state: value(found, "alertd_checks", state=state) for state in CHECK_STATES} == {
        "new": 0, "up": 1, "down": 2, "running": 0, "paused": 0}
    queue.depth["critical"], queue.in_flight = 0, 0
    scheduler.checks.clear()
    found = samples(m)
    assert value(found, "alertd_queue_depth", severity="critical") == 0
    assert value(found, "alertd_checks", state="down") == 0
    assert value(found, "alertd_due_backlog") is None  # not read this time: left out rather than a false 0


def test_unwatched_gauges_are_left_out() -> None:
    text = Metrics(process=False).render().decode()
    assert "alertd_queue_depth" not in text and "alertd_checks" not in text


def test_the_exposition_has_process_metrics_and_no_created_series() -> None:
    text = Metrics().render().decode()
    assert "python_info{" in text
    assert "process_resident_memory_bytes " in text  # Linux: read from /proc/self
    assert "_created" not in text


def test_with_metrics_off_every_hook_is_a_no_op() -> None:
    NO_METRICS.watch(FakeQueue(), FakeScheduler())
    NO_METRICS.event_ingested(Severity.INFO, False)
    NO_METRICS.attempt_finished("x", "webhook", "failed", DeliveryState.DEAD, 0.1)
    NO_METRICS.dead_unconfigured("x")
    NO_METRICS.ingest_finished(0.1)
    NO_METRICS.store_committed(0.1, 3)
    assert not hasattr(NO_METRICS, "registry")
