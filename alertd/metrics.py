"""Prometheus metrics. The hot paths (ingest, attempts, the writer's commits) bump counters and histograms
through hooks; queue depth, backlog and check states are read at scrape time, never kept up to date per
event. With metrics off every hook is a no-op (`NO_METRICS`), so call sites never ask whether they are on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alertd.checks import State
from alertd.model import DeliveryState, Severity

CHECK_STATES: tuple[str, ...] = get_args(State)
UNKNOWN_TYPE = "unknown"  # a delivery for a channel that is no longer configured has no type
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INGEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class QueueView(Protocol):
    @property
    def in_flight(self) -> int: ...

    def depth_by_severity(self) -> dict[str, int]: ...


class _CheckState(Protocol):
    @property
    def state(self) -> str: ...


class _Check(Protocol):
    @property
    def state(self) -> _CheckState: ...


class CheckView(Protocol):
    @property
    def checks(self) -> Mapping[str, _Check]: ...


class MetricHooks:
    """What the daemon's parts report. This base does nothing: it stands in when metrics are off."""

    def watch(self, queue: QueueView, scheduler: CheckView) -> None:
        """The parts whose state is read at scrape time."""

    def event_ingested(self, severity: Severity, duplicate: bool) -> None:
        """One event committed (a duplicate idempotency key counts apart: nothing was stored)."""

    def attempt_finished(self, channel: str, kind: str, outcome: str, state: DeliveryState, seconds: float) -> None:
        """One attempt: its outcome (delivered | failed) and the state it left the delivery in."""

    def dead_unconfigured(self, channel: str) -> None:
        """A delivery recorded dead because its channel is no longer configured."""

    def ingest_finished(self, seconds: float) -> None:
        """One POST /v1/events handled, commit wait included."""

    def store_committed(self, seconds: float, ops: int) -> None:
        """One group commit of `ops` write operations. Called from the writer thread."""


NO_METRICS = MetricHooks()


class _ChannelSeries:
    """A channel's labelled children, looked up once: the attempt path only increments."""

    __slots__ = ("attempts", "dead", "delivered", "duration", "failed", "kind", "retrying")

    def __init__(self, metrics: Metrics, channel: str, kind: str) -> None:
        self.kind = kind
        self.attempts = metrics.attempts.labels(channel, kind)
        self.duration = metrics.delivery_seconds.labels(channel, kind)
        self.delivered = metrics.deliveries.labels(channel, kind, "delivered")
        self.failed = metrics.deliveries.labels(channel, kind, "failed")
        self.retrying = metrics.deliveries.labels(channel, kind, "retrying")
        self.dead = metrics.deliveries.labels(channel, kind, "dead")


class Metrics(MetricHooks):
    """One registry per daemon, never the global one: tests run several daemons in one process."""

    def __init__(self, *, process: bool = True) -> None:
        disable_created_metrics()  # no `_created` twin for every series: Prometheus does not use them
        self.registry = CollectorRegistry()
        r = self.registry
        self.ingested = Counter("alertd_events_ingested", "Events committed (from producers, hooks and the "
                                "scheduler), by severity.", ["severity"], registry=r)
        self.duplicates = Counter("alertd_ingest_duplicates", "Envelopes answered as duplicates of an "
                                  "idempotency key seen within 24 h (nothing stored or sent).", registry=r)
        self.deliveries = Counter("alertd_deliveries", "Attempt outcomes (delivered, failed) and the states "
                                  "failed attempts left deliveries in (retrying, dead).",
                                  ["channel", "type", "outcome"], registry=r)
        self.attempts = Counter("alertd_delivery_attempts", "Delivery attempts made.", ["channel", "type"],
                                registry=r)
        self.delivery_seconds = Histogram("alertd_delivery_duration_seconds", "Time one delivery attempt took.",
                                          ["channel", "type"], buckets=DELIVERY_BUCKETS, registry=r)
        self.ingest_seconds = Histogram("alertd_ingest_latency_seconds", "Time to answer POST /v1/events, "
                                        "commit wait included.", buckets=INGEST_BUCKETS, registry=r)
        self.commit_seconds = Histogram("alertd_store_commit_seconds", "Time one group commit took "
                                        "(BEGIN to COMMIT).", buckets=COMMIT_BUCKETS, registry=r)
        self.commit_ops = Histogram("alertd_store_commit_batch_size", "Write operations (ingest requests, "
                                    "attempt records, …) committed together in one group commit.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self._by_severity = {s: self.ingested.labels(s.label) for s in Severity}
        self._channels: dict[str, _ChannelSeries] = {}
        self.live = LiveCollector()
        r.register(self.live)
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

    def watch(self, queue: QueueView, scheduler: CheckView) -> None:
        self.live.queue, self.live.scheduler = queue, scheduler

    def event_ingested(self, severity: Severity, duplicate: bool) -> None:
        if duplicate:
            self.duplicates.inc()
        else:
            self._by_severity[severity].inc()

    def attempt_finished(self, channel: str, kind: str, outcome: str, state: DeliveryState, seconds: float) -> None:
        series = self._series(channel, kind)
        series.attempts.inc()
        series.duration.observe(seconds)
        if outcome == "delivered":
            series.delivered.inc()
            return
        series.failed.inc()
        if state is DeliveryState.RETRYING:
            series.retrying.inc()
        elif state is DeliveryState.DEAD:
            series.dead.inc()

    def dead_unconfigured(self, channel: str) -> None:
        # its failed attempt row is written too: count it, so delivered + failed stays the number of attempts
        series = self._series(channel, UNKNOWN_TYPE)
        series.attempts.inc()
        series.failed.inc()
        series.dead.inc()

    def ingest_finished(self, seconds: float) -> None:
        self.ingest_seconds.observe(seconds)

    def store_committed(self, seconds: float, ops: int) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_ops.observe(ops)

    def _series(self, channel: str, kind: str) -> _ChannelSeries:
        series = self._channels.get(channel)
        if series is None or series.kind != kind:  # a channel whose type changed gets the new label
            series = self._channels[channel] = _ChannelSeries(self, channel, kind)
        return series

    def render(self, due_backlog: int | None = None) -> bytes:
        """The text exposition format. `due_backlog` comes from the store, which the caller reads
        (asynchronously) just before: a collector cannot await."""
        self.live.due_backlog = due_backlog
        try:
            return generate_latest(self.registry)
        finally:
            self.live.due_backlog = None


class LiveCollector(Collector):
    """Gauges computed when scraped, from the dispatcher and the scheduler as they are at that moment."""

    def __init__(self) -> None:
        self.queue: QueueView | None = None
        self.scheduler: CheckView | None = None
        self.due_backlog: int | None = None

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families(fill=True))

    def _families(self, fill: bool = False) -> Iterator[Metric]:
        depth = GaugeMetricFamily("alertd_queue_depth", "Deliveries held in memory waiting for a worker "
                                  "(due or in backoff), by severity.", labels=["severity"])
        in_flight = GaugeMetricFamily("alertd_in_flight", "Delivery attempts in progress.")
        backlog = GaugeMetricFamily("alertd_due_backlog", "Open deliveries in the store whose next attempt "
                                    "is due now (the store is the queue of record).")
        checks = GaugeMetricFamily("alertd_checks", "Checks by state.", labels=["state"])
        if fill:
            if self.queue is not None:
                for severity, count in self.queue.depth_by_severity().items():
                    depth.add_metric([severity], count)
                in_flight.add_metric([], self.queue.in_flight)
            if self.due_backlog is not None:
                backlog.add_metric([], self.due_backlog)
            if self.scheduler is not None:
                counts = dict.fromkeys(CHECK_STATES, 0)
                for check in self.scheduler.checks.values():
                    counts[check.state.state] = counts.get(check.state.state, 0) + 1
                for state, count in counts.items():
                    checks.add_metric([state], count)
        for family in (depth, in_flight, backlog, checks):
            if family.samples or not fill:  # a source not wired (or a failed store read) is left out, not 0
                yield family
