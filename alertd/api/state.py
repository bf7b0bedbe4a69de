"""What handlers reach through `request.app[RUNTIME]`: the wired parts of a running daemon."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from alertd.adapters.hooks import CompiledHook
from alertd.auth import ApiKey
from alertd.changes import Changes
from alertd.config import Config, Settings
from alertd.dispatch import Dispatcher
from alertd.incidents import Incidents
from alertd.ingest import Ingest
from alertd.live import Live
from alertd.metrics import NO_METRICS, MetricHooks
from alertd.redact import compile_sensitive
from alertd.replay import Replayer
from alertd.retry import RetryPolicy
from alertd.scheduler import Scheduler
from alertd.silences import SilenceBook
from alertd.store import Store


@dataclass
class Runtime:
    config: Config
    store: Store
    dispatcher: Dispatcher
    ingest: Ingest
    replayer: Replayer
    live: Live
    changes: Changes
    scheduler: Scheduler
    incidents: Incidents
    silences: SilenceBook = field(default_factory=SilenceBook)
    accepting: bool = True
    started_at: float = field(default=0.0)
    metrics: MetricHooks = NO_METRICS

    @property
    def hooks(self) -> dict[str, CompiledHook]:
        return self.live.snapshot.config.hooks  # swapped with the rest on reload

    def apply_tunables(self, settings: Settings) -> None:
        """On reload, the sections long-lived parts copied at start, applied in place: redaction for events
        ingested from now on, the retry policy and window for the next attempts, the scheduler's thresholds
        for what it decides next, link_ttl for links signed from now on."""
        self.ingest.sensitive = compile_sensitive(settings.redact.keys)
        d = settings.dispatch
        self.dispatcher.policy = RetryPolicy(d.max_attempts, d.backoff_base, d.backoff_cap)
        self.dispatcher.window = d.window
        self.scheduler.outcome_failure_threshold = settings.scheduler.outcome_failure_threshold
        self.scheduler.audit_retention_days = settings.scheduler.audit_retention_days
        self.incidents.link_ttl = settings.scheduler.link_ttl


RUNTIME = web.AppKey("runtime", Runtime)
MAX_BODY = web.AppKey("max_body_bytes", int)
API_KEY = web.RequestKey("api_key", ApiKey)
