"""What handlers reach through `request.app[RUNTIME]`: the wired parts of a running daemon."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from alertd.adapters.hooks import CompiledHook
from alertd.auth import ApiKey
from alertd.changes import Changes
from alertd.config import Config
from alertd.dispatch import Dispatcher
from alertd.incidents import Incidents
from alertd.ingest import Ingest
from alertd.live import Live
from alertd.metrics import NO_METRICS, MetricHooks
from alertd.replay import Replayer
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


RUNTIME = web.AppKey("runtime", Runtime)
MAX_BODY = web.AppKey("max_body_bytes", int)
API_KEY = web.RequestKey("api_key", ApiKey)
