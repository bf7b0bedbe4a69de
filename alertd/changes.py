"""Changes to the configuration in force, from the admin API or a reload. Each change is checked
against the whole would-be configuration before anything is written, then applied as a new snapshot.
Changes are serialised: two at once cannot both validate against the same old state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from alertd.auth import hash_key, new_key
from alertd.channels.base import parse_rate
from alertd.config import Config, ConfigError, RouteDecl, build_channels, build_routes, describe_validation_error
from alertd.errors import RequestError
from alertd.live import Live, build_snapshot
from alertd.routing import valid_pattern
from alertd.secrets import secret_ref_in
from alertd.store import Store
from alertd.store import admin_ops as ops
from alertd.store.reads import KeyRow, api_keys

NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"


class ChangeError(RequestError):
    pass


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: null removes a key, objects merge, anything else replaces."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def _looks_masked(value: Any) -> bool:
    values = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
    return any(isinstance(v, str) and v.endswith("****") for v in values)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    plaintext: str
    row: KeyRow


class Changes:
    def __init__(self, live: Live, store: Store) -> None:
        self.live = live
        self.store = store
        self._lock = asyncio.Lock()

    # ---- channels -------------------------------------------------------------------------------

    async def create_channel(self, raw: dict[str, Any]) -> None:
        async with self._lock:
            name = raw.get("name")
            if isinstance(name, str) and name in self.live.snapshot.channels:
                raise ChangeError(409, "conflict", f"a channel named {name!r} exists", "name")
            await self._write_channel(raw)

    async def patch_channel(self, name: str, patch: dict[str, Any]) -> None:
        async with self._lock:
            current = self._api_managed("channel", name, self.live.snapshot.channel_managed)
            masked = [k for k, v in patch.items() if _looks_masked(v)]
            if masked:
                raise ChangeError(400, "invalid_channel", f"{masked[0]}: that is the masked value shown by the API; "
                                  "send the real secret, or leave the key out to keep it", masked[0])
            merged = merge_patch(self.live.snapshot.channel_raw[name], patch)
            if merged.get("name") != name or merged.get("type") != current.get("type"):
                raise ChangeError(400, "invalid_body", "a channel's name and type cannot change", "name")
            await self._write_channel(merged)

    async def delete_channel(self, name: str) -> None:
        async with self._lock:
            self._api_managed("channel", name, self.live.snapshot.channel_managed)
            users = [d.name for d in self.live.snapshot.route_decls
                     if name in d.channels or any(name in step.channels for step in d.escalate)]
            if users:
                raise ChangeError(409, "conflict", f"routes still send to {name!r}: {', '.join(users[:5])}")
            fallbacks = [c.name for c in self.live.snapshot.channels.values() if c.fallback == name]
            if fallbacks:
                raise ChangeError(409, "conflict", f"channels fall back to {name!r}: {', '.join(fallbacks[:5])}")
            await self.store.writer.submit(lambda c: ops.delete_channel(c, name, time.time()))
            await self._rebuild()

    async def _write_channel(self, raw: dict[str, Any]) -> None:
        ref = secret_ref_in(raw)
        if ref is not None:
            # resolved, they would read the daemon's environment and files (its own admin key included) into
            # a channel the caller can point anywhere: references are for the operator's config file only
            raise ChangeError(400, "invalid_channel", f"{ref}: env:, file: and cred: references can only be "
                              "written in the config file; send the value itself", ref)
        candidate = {**self.live.snapshot.channel_raw, str(raw.get("name")): raw}
        try:
            channels = build_channels(list(candidate.values()), [f"channel {n!r}" for n in candidate])
        except ConfigError as exc:
            raise ChangeError(400, "invalid_channel", str(exc)) from None
        config = channels[str(raw["name"])]
        await self.store.writer.submit(lambda c: ops.upsert_channel(c, config.name, config.type, raw, time.time()))
        await self._rebuild()

    # ---- routes ---------------------------------------------------------------------------------

    async def create_route(self, raw: dict[str, Any]) -> None:
        async with self._lock:
            name = raw.get("name")
            if isinstance(name, str) and name in self.live.snapshot.route_managed:
                raise ChangeError(409, "conflict", f"a route named {name!r} exists", "name")
            await self._write_route(raw)

    async def patch_route(self, name: str, patch: dict[str, Any]) -> None:
        async with self._lock:
            self._api_managed("route", name, self.live.snapshot.route_managed)
            current = next(d for d in self.live.snapshot.route_decls if d.name == name)
            merged = merge_patch(current.model_dump(exclude_none=True), patch)
            if merged.get("name") != name:
                raise ChangeError(400, "invalid_body", "a route's name cannot change", "name")
            await self._write_route(merged)

    async def delete_route(self, name: str) -> None:
        async with self._lock:
            self._api_managed("route", name, self.live.snapshot.route_managed)
            await self.store.writer.submit(lambda c: ops.delete_route(c, name))
            await self._rebuild()

    async def _write_route(self, raw: dict[str, Any]) -> None:
        try:
            decl = RouteDecl.model_validate(raw)
            build_routes([decl], self.live.snapshot.channels, [f"route {decl.name!r}"])
        except ValidationError as exc:
            raise ChangeError(400, "invalid_route", describe_validation_error(exc)) from None
        except ConfigError as exc:
            raise ChangeError(400, "invalid_route", str(exc)) from None
        stored = decl.model_dump(exclude_none=True)
        await self.store.writer.submit(lambda c: ops.upsert_route(c, decl.name, stored, time.time()))
        await self._rebuild()

    # ---- keys -----------------------------------------------------------------------------------

    async def create_key(self, name: str, role: str, events: list[str], rate: str | None = None) -> CreatedKey:
        if not name or len(name) > 63 or name[0] not in NAME_CHARS[:36] or any(c not in NAME_CHARS for c in name):
            raise ChangeError(400, "invalid_body", "name: lowercase letters, digits, _ . - (at most 63)", "name")
        if role not in ("producer", "admin"):
            raise ChangeError(400, "invalid_body", "role must be producer or admin", "role")
        if rate is not None:
            try:
                parse_rate(rate)
            except (ValueError, TypeError, AttributeError):
                raise ChangeError(400, "invalid_body", "rate: e.g. '100/s', '6000/m'", "rate") from None
        bad = [p for p in events if not isinstance(p, str) or not valid_pattern(p)]
        if not events or len(events) > 100 or bad:
            raise ChangeError(400, "invalid_body", "events: 1 to 100 event names, 'prefix.*' or '*'", "events")
        async with self._lock:
            existing = {row.name for row in await api_keys(self.store.read)} | set(self.live.snapshot.key_managed)
            if name in existing:
                raise ChangeError(409, "conflict", f"a key named {name!r} exists (names are never reused)", "name")
            plaintext = new_key()
            prefix, digest, now = plaintext[:12], hash_key(plaintext), time.time()
            await self.store.writer.submit(lambda c: ops.insert_key(c, name, prefix, digest, role, events, now, rate))
            await self._rebuild()
        return CreatedKey(plaintext, KeyRow(name, prefix, digest, role, tuple(events), now, None, None, rate))

    async def revoke_key(self, name: str) -> None:
        async with self._lock:
            managed = self.live.snapshot.key_managed.get(name)
            if managed == "config":
                raise ChangeError(409, "managed_by_config",
                                  f"key {name!r} is declared in the config file; remove it there and reload")
            if not await self.store.writer.submit(lambda c: ops.revoke_key(c, name, time.time())):
                raise ChangeError(404, "not_found", f"no active key named {name!r}")
            await self._rebuild()

    # ---- whole config ---------------------------------------------------------------------------

    async def reload(self, config: Config) -> None:
        """A re-read TOML replaces the config-managed part; API-managed rows stay."""
        async with self._lock:
            self.live.swap(await build_snapshot(config, self.store))

    async def _rebuild(self) -> None:
        self.live.swap(await build_snapshot(self.live.snapshot.config, self.store))

    def _api_managed(self, kind: str, name: str, managed: Mapping[str, str]) -> dict[str, Any]:
        origin = managed.get(name)
        if origin is None:
            raise ChangeError(404, "not_found", f"no {kind} named {name[:60]!r}")
        if origin == "config":
            raise ChangeError(409, "managed_by_config",
                              f"{kind} {name!r} is declared in the config file; change it there and reload")
        return self.live.snapshot.channel_raw.get(name, {}) if kind == "channel" else {}
