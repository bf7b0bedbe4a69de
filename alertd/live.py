"""The configuration in force: channels, routes, keys and the event catalog, from the TOML (managed
"config") and from the admin API (managed "api", kept in the store). Every change builds a whole new
Snapshot and swaps it in one assignment, so a request sees either the old config or the new, never half."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from alertd.auth import ApiKey, KeyRing, hash_key
from alertd.channels import REGISTRY, BaseChannel, ChannelConfig, HttpSender
from alertd.channels.base import parse_rate, rate_burst
from alertd.config import (
    ADMIN_KEY_NAME,
    CatalogDecl,
    Config,
    ConfigError,
    RouteDecl,
    build_channels,
    build_routes,
    parse_channel,
)
from alertd.ingest import RouteTable
from alertd.model import Severity
from alertd.ratelimit import TokenBucket
from alertd.store import Store
from alertd.store.reads import api_channels, api_keys, api_routes

log = structlog.get_logger("alertd.live")

Managed = Literal["config", "api"]


@dataclass(frozen=True)
class Snapshot:
    config: Config
    channels: dict[str, ChannelConfig]
    channel_managed: dict[str, Managed]
    channel_raw: dict[str, dict[str, Any]]  # as declared (secret references unresolved), for the API
    route_decls: tuple[RouteDecl, ...]
    route_managed: dict[str, Managed]
    routes: RouteTable
    keyring: KeyRing
    key_managed: dict[str, Managed]
    catalog: dict[str, CatalogDecl]
    built_at: float = field(default_factory=time.time)

    def default_severity(self, event_name: str) -> Severity:
        entry = self.catalog.get(event_name)
        return Severity.parse(entry.default_severity) if entry else Severity.INFO


def config_keys(config: Config) -> list[ApiKey]:
    s = config.settings
    keys = [ApiKey(k.name, k.role, tuple(k.events),
                   hash_key(k.key.get_secret_value()) if k.key is not None else (k.key_sha256 or ""), k.rate)
            for k in s.keys]
    if s.admin_key is not None:
        keys.append(ApiKey(ADMIN_KEY_NAME, "admin", ("*",), hash_key(s.admin_key.get_secret_value())))
    return keys


async def build_snapshot(config: Config, store: Store, *, strict: bool = False) -> Snapshot:
    """TOML first, then the API's rows. An API row that no longer validates (say, its env: secret is
    gone) is left out with an error logged — unless `strict`, when the caller is about to write it."""
    raw_channels = {c["name"]: c for c in config.settings.channels}
    channel_managed: dict[str, Managed] = dict.fromkeys(raw_channels, "config")
    for row in await api_channels(store.read):
        if row.name in raw_channels:
            log.error("api_channel_shadowed", channel=row.name)
            continue
        try:
            parse_channel(row.config, f"channel {row.name!r}")  # alone: its fallback is checked below, among all
        except ConfigError as exc:
            if strict:
                raise
            log.error("api_channel_invalid", channel=row.name, error=str(exc))
            continue
        raw_channels[row.name] = row.config
        channel_managed[row.name] = "api"
    _drop_broken_fallbacks(raw_channels, channel_managed, strict)
    channels = build_channels(list(raw_channels.values()), [f"channel {n!r}" for n in raw_channels])

    decls = list(config.settings.routes)
    route_managed: dict[str, Managed] = {d.name: "config" for d in decls}
    labels = [f"routes[{i}]" for i in range(len(decls))]
    for row in await api_routes(store.read):
        if row.name in route_managed:
            continue
        try:
            decl = RouteDecl.model_validate(row.config)
            build_routes([decl], channels, [f"route {row.name!r}"])
        except (ValueError, ConfigError) as exc:
            if strict:
                raise ConfigError(str(exc)) from None
            log.error("api_route_invalid", route=row.name, error=str(exc)[:300])
            continue
        decls.append(decl)
        labels.append("route")
        route_managed[decl.name] = "api"
    routes = build_routes(decls, channels, labels)

    keys = config_keys(config)
    key_managed: dict[str, Managed] = {k.name: "config" for k in keys}
    for key_row in await api_keys(store.read):
        if key_row.revoked_at is None and key_row.name not in key_managed:
            role: Literal["admin", "producer"] = "admin" if key_row.role == "admin" else "producer"
            keys.append(ApiKey(key_row.name, role, key_row.events, key_row.sha256, key_row.rate))
            key_managed[key_row.name] = "api"
    return Snapshot(config=config, channels=channels, channel_managed=channel_managed, channel_raw=raw_channels,
                    route_decls=tuple(decls), route_managed=route_managed, routes=RouteTable(routes),
                    keyring=KeyRing(keys), key_managed=key_managed, catalog=config.catalog)


def _drop_broken_fallbacks(raw: dict[str, dict[str, Any]], managed: dict[str, Managed], strict: bool) -> None:
    """An API channel is kept once its fallback is none, itself, or a kept channel (config ones are); what is
    left falls back to a channel that is gone, or round in a circle: left out like any invalid row."""
    kept = {name for name, origin in managed.items() if origin == "config"}
    waiting = {name: raw[name].get("fallback") for name in managed if name not in kept}
    while ready := [name for name, target in waiting.items() if target in (None, name) or target in kept]:
        kept.update(ready)
        for name in ready:
            del waiting[name]
    for name, target in waiting.items():
        if strict:
            raise ConfigError(f"channel {name!r}.fallback: {str(target)[:40]!r} is gone or falls back in a circle")
        log.error("api_channel_invalid", channel=name, error="its fallback is gone or falls back in a circle")
        del raw[name], managed[name]


class Live:
    """Holds the snapshot in force and the channel instances built from it."""

    def __init__(self, snapshot: Snapshot, http: HttpSender) -> None:
        self.snapshot = snapshot
        self.http = http
        self.channels: dict[str, BaseChannel] = {}
        self._instances(snapshot)
        self.listeners: list[Callable[[dict[str, BaseChannel]], None]] = []
        self.key_last_used: dict[str, float] = {}
        self._buckets: dict[str, tuple[str, TokenBucket]] = {}  # key name → (its rate, its bucket)

    def _instances(self, snapshot: Snapshot) -> dict[str, BaseChannel]:
        fresh = {}
        for name, config in snapshot.channels.items():
            current = self.channels.get(name)
            # keep an unchanged channel's instance (and so its lane's rate bucket) across swaps
            fresh[name] = current if current is not None and current.config == config else \
                REGISTRY[config.type](config, self.http)
        self.channels = fresh
        return fresh

    def swap(self, snapshot: Snapshot) -> None:
        channels = self._instances(snapshot)
        self.snapshot = snapshot
        for listener in self.listeners:
            listener(channels)
        log.info("config_applied", channels=len(channels), routes=len(snapshot.route_decls),
                 keys=len(snapshot.keyring))

    def throttle(self, key: ApiKey, now: float) -> float:
        """0 if the key may make this request now, else the seconds until it may."""
        if key.rate is None:
            return 0.0
        held = self._buckets.get(key.name)
        if held is None or held[0] != key.rate:  # new, or its rate changed in a reload
            per_second = parse_rate(key.rate)
            held = self._buckets[key.name] = (key.rate, TokenBucket(per_second, burst=rate_burst(key.rate)))
        return held[1].try_take(now)

    def lookup_key(self, presented: str) -> ApiKey | None:
        key = self.snapshot.keyring.lookup(presented)
        if key is not None:
            self.key_last_used[key.name] = time.time()
        return key
