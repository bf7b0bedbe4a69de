"""Settings: alertd.toml, overridden by ALERTD_<SECTION>__<KEY> environment variables."""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from alertd.adapters.hooks import CompiledHook, HookDecl, compile_hooks
from alertd.auth import hash_key
from alertd.channels import REGISTRY, ChannelConfig
from alertd.channels.base import parse_rate
from alertd.checks import CheckDecl
from alertd.conditions import ConditionError, parse_conditions
from alertd.dedup import compile_dedup_key
from alertd.durations import parse_bounded_duration, parse_duration
from alertd.model import Severity
from alertd.redact import DEFAULT_SENSITIVE_KEYS, compile_sensitive
from alertd.routing import EscalationStep, Route, pattern_error, sort_routes, valid_pattern
from alertd.secrets import Secret
from alertd.silences import SilenceDecl

_STRICT = ConfigDict(extra="forbid")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class ConfigError(Exception):
    """One line naming the key and the problem."""


def clip(text: str, limit: int = 60) -> str:
    """`text` made safe for a one-line error: control characters escaped as repr does, cut to `limit`
    (a name straight from the file may hold a newline, a terminal escape or 200 KB)."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


class ServerSettings(BaseModel):
    model_config = _STRICT
    listen: str = "127.0.0.1:8040"
    public_url: str = "http://127.0.0.1:8040"
    max_body_bytes: int = Field(default=262_144, ge=1024, le=64 * 1024 * 1024)
    max_batch: int = Field(default=500, ge=1, le=5000)
    drain_timeout: float = 10.0

    @field_validator("drain_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value


_HOST_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?\Z")


def split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be HOST:PORT, got {value[:60]!r}")
    host = host.strip("[]") or "127.0.0.1"
    if not _valid_host(host):
        raise ValueError(f"host {host[:60]!r} is not an IP address or a host name")
    return host, int(port)


def _valid_host(host: str) -> bool:
    """An address or a name getaddrinfo can take: checked here, since its idna codec fails only at bind time."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_name = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return _HOST_NAME.match(ascii_name) is not None


class StorageSettings(BaseModel):
    model_config = _STRICT
    path: Path = Path("alertd.db")
    # NORMAL: a power cut may lose the last transactions acknowledged before it (never corrupts);
    # FULL: every acknowledged transaction survives a power cut, at about half the commit rate.
    synchronous: Literal["normal", "full"] = "full"
    retention_days: int = Field(default=30, ge=1, le=3650)

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        # before: Path("") is Path("."), a directory, and SQLite would fail on it only at serve
        if isinstance(value, str | Path) and not str(value):
            raise ValueError("must not be empty")
        if isinstance(value, str | Path) and _is_dir(Path(value)):
            raise ValueError("is a directory: name the database file inside it, e.g. alertd.db")
        return value


def _is_dir(path: Path) -> bool:
    """False when it cannot be told (a state directory check-config may not read): serve says so then."""
    try:
        return path.is_dir()
    except OSError:
        return False


class NetSettings(BaseModel):
    model_config = _STRICT
    allow_private: list[str] = Field(default_factory=list)

    @field_validator("allow_private")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net[:60]!r} is not a network in CIDR form (e.g. 127.0.0.0/8)") from None
        return value


class DispatchSettings(BaseModel):
    model_config = _STRICT
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_base: float = 1.0
    backoff_cap: float = 600.0
    # deliveries held in memory, about: an equal share per channel (alertd.dispatch.Dispatcher.share)
    window: int = Field(default=10_000, ge=100, le=1_000_000)

    @field_validator("backoff_base", "backoff_cap", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class RedactSettings(BaseModel):
    model_config = _STRICT
    keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SENSITIVE_KEYS), max_length=200)

    @field_validator("keys")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        compile_sensitive(value)
        return value


MAX_LINK_TTL = 30 * 86400  # retention relies on it: a used link's id is kept this long, then purged


class SchedulerSettings(BaseModel):
    model_config = _STRICT
    outcome_failure_threshold: int = Field(default=3, ge=1, le=1000)
    audit_retention_days: int = Field(default=365, ge=1, le=36500)
    link_ttl: float = 86400.0  # how long ack and approve links stay valid

    @field_validator("link_ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> float:
        return parse_bounded_duration(value, 60, MAX_LINK_TTL, "link_ttl")


class LogSettings(BaseModel):
    model_config = _STRICT
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class MetricsSettings(BaseModel):
    model_config = _STRICT
    enabled: bool = True
    public: bool = False  # true: GET /metrics needs no key (a scraper on a trusted network)
    token: Secret | None = None  # what a Prometheus scrape config sends as its bearer token

    @field_validator("token")
    @classmethod
    def _token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


class KeyDecl(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=NAME_PATTERN)
    key: Secret | None = None
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    role: Literal["producer", "admin"] = "producer"
    events: list[str] = Field(default_factory=lambda: ["*"], max_length=100)
    rate: str | None = None  # "100/s", "6000/m": requests per key; more get 429 with Retry-After

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    @model_validator(mode="after")
    def _one_key(self) -> KeyDecl:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key or key_sha256")
        if self.key is not None and len(self.key.get_secret_value()) < 16:
            raise ValueError("key must be at least 16 characters")
        for pattern in self.events:
            if not valid_pattern(pattern):
                raise ValueError("events: " + pattern_error(pattern))
        return self


ACTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")


class EscalateDecl(BaseModel):
    model_config = _STRICT
    after: float
    channels: list[str] = Field(min_length=1, max_length=20)

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> float:
        return parse_bounded_duration(value, 1, 7 * 86400, "after")


class RouteDecl(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=NAME_PATTERN)
    match: str
    channels: list[str] = Field(min_length=1, max_length=100)
    min_severity: str = "info"
    priority: int = Field(default=100, ge=-1_000_000, le=1_000_000)
    when: list[Any] | None = None
    any: list[Any] | None = None
    suppress_for: float | None = None
    dedup_key: str | None = Field(default=None, max_length=500)
    escalate: list[EscalateDecl] = Field(default_factory=list, max_length=10)
    actions: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("suppress_for", mode="before")
    @classmethod
    def _window(cls, value: Any) -> float | None:
        if value is None:
            return None
        return parse_bounded_duration(value, 1, 30 * 86400, "suppress_for")

    @field_validator("dedup_key")
    @classmethod
    def _dedup_key(cls, value: str | None) -> str | None:
        if value is not None:
            compile_dedup_key(value)  # DedupKeyError is a ValueError: reported as routes[i].dedup_key
        return value

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ACTION_NAME.match(name):
                raise ValueError(f"action {name[:40]!r}: lowercase letters, digits, _ and -, at most 64")
        return value

    @field_validator("match")
    @classmethod
    def _match(cls, value: str) -> str:
        if not valid_pattern(value):
            raise ValueError(pattern_error(value))
        return value

    @field_validator("min_severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        return Severity.parse(value).label

    def to_route(self) -> Route:
        try:
            conditions = parse_conditions(self.when, self.any)
        except ConditionError as exc:
            raise ValueError(str(exc)) from None
        if self.dedup_key is not None and self.suppress_for is None:
            raise ValueError("dedup_key needs suppress_for (the window)")
        steps = tuple(EscalationStep(e.after, tuple(e.channels)) for e in self.escalate)
        if any(b.after_s <= a.after_s for a, b in itertools.pairwise(steps)):
            raise ValueError("escalate: steps must come later and later (after increasing)")
        return Route(name=self.name, match=self.match, channels=tuple(self.channels),
                     min_severity=Severity.parse(self.min_severity), priority=self.priority,
                     conditions=conditions, suppress_for=self.suppress_for,
                     dedup_key=self.dedup_key or ("{event}" if self.suppress_for else None),
                     escalate=steps, actions=tuple(self.actions))


class CatalogDecl(BaseModel):
    """An event name alertd knows: its default severity and what it means."""

    model_config = _STRICT
    name: str
    default_severity: str = "info"
    description: str = Field(default="", max_length=2000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if "*" in value or not valid_pattern(value):
            raise ValueError(f"{value[:60]!r} is not an event name")
        return value

    @field_validator("default_severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        return Severity.parse(value).label


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERTD_", env_nested_delimiter="__", extra="forbid",
                                      case_sensitive=False)

    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    net: NetSettings = Field(default_factory=NetSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    redact: RedactSettings = Field(default_factory=RedactSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    admin_key: Secret | None = None
    keys: list[KeyDecl] = Field(default_factory=list)
    channels: list[dict[str, Any]] = Field(default_factory=list)
    routes: list[RouteDecl] = Field(default_factory=list)
    events: list[CatalogDecl] = Field(default_factory=list)
    hooks: list[HookDecl] = Field(default_factory=list)
    checks: list[CheckDecl] = Field(default_factory=list)
    silences: list[SilenceDecl] = Field(default_factory=list, max_length=500)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML arrives as init kwargs; the environment overrides it.
        return env_settings, init_settings

    @field_validator("admin_key")
    @classmethod
    def _admin_key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


class Config:
    """Settings plus what is derived from them and checked across sections."""

    def __init__(self, settings: Settings, source: Path | None = None) -> None:
        self.settings = settings
        self.source = source
        self.channels: dict[str, ChannelConfig] = build_channels(settings.channels)
        self.routes: tuple[Route, ...] = build_routes(settings.routes, self.channels)
        self.catalog: dict[str, CatalogDecl] = _build_catalog(settings.events)
        self.hooks: dict[str, CompiledHook] = _build_hooks(settings.hooks)
        _check_keys(settings)
        names = [c.name for c in settings.checks]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ConfigError(f"checks: duplicate check name {duplicate!r}")

    @property
    def server(self) -> ServerSettings:
        return self.settings.server


ADMIN_KEY_NAME = "admin"  # the name the keyring gives admin_key / ALERTD_ADMIN_KEY (alertd.live.config_keys)


def _check_keys(settings: Settings) -> None:
    """The keyring files keys by hash, the last one winning: a repeated key would silently take the other's
    role (a producer key made admin), and a repeated name would make two keys one in the API and logs."""
    names: dict[str, str] = {}
    hashes: dict[str, str] = {}
    if settings.admin_key is not None:
        names[ADMIN_KEY_NAME] = "admin_key"
        hashes[hash_key(settings.admin_key.get_secret_value())] = "admin_key"
    for index, decl in enumerate(settings.keys):
        label = f"keys[{index}]"
        if decl.name in names:
            also = " (the name of admin_key)" if names[decl.name] == "admin_key" else ""
            raise ConfigError(f"{label}: duplicate key name {decl.name!r}{also}")
        names[decl.name] = label
        digest = hash_key(decl.key.get_secret_value()) if decl.key is not None else (decl.key_sha256 or "").lower()
        if digest in hashes:
            raise ConfigError(f"{label}: the same key as {hashes[digest]}")  # named by place: never the key
        hashes[digest] = label


def parse_channel(raw: Any, label: str) -> ChannelConfig:
    """One channel declaration → its type's validated config. Raises ConfigError naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: must be a table")
    name = raw.get("name")
    if isinstance(name, str) and "(" not in label:
        label = f"{label} ({clip(name, 40)})"
    kind = raw.get("type")
    channel_class = REGISTRY.get(kind) if isinstance(kind, str) else None
    if channel_class is None:
        raise ConfigError(f"{label}.type: unknown channel type {str(kind)[:40]!r}; "
                          f"known: {', '.join(sorted(REGISTRY))}")
    try:
        return channel_class.config_model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, prefix=label)) from None


def build_channels(declared: list[dict[str, Any]], labels: list[str] | None = None) -> dict[str, ChannelConfig]:
    channels: dict[str, ChannelConfig] = {}
    for index, raw in enumerate(declared):
        label = labels[index] if labels else f"channels[{index}]"
        config = parse_channel(raw, label)
        if config.name in channels:
            raise ConfigError(f"{label}.name: duplicate channel name {config.name!r}")
        channels[config.name] = config
    for config in channels.values():
        if config.fallback is not None and config.fallback not in channels:
            raise ConfigError(f"channel {config.name!r}.fallback: no channel named {config.fallback[:40]!r}")
    for config in channels.values():
        # a cycle (a → b → a) would make a new linked delivery each time the last one goes dead, forever
        seen, target = {config.name}, config.fallback
        while target is not None and target != config.name and target not in seen:
            seen.add(target)
            following = channels[target].fallback
            target = None if following == target else following  # falling back to itself does nothing
        if target == config.name and config.fallback != config.name:
            raise ConfigError(f"channel {config.name!r}.fallback: the fallbacks go round in a circle back to it")
    return channels


def build_routes(declared: list[RouteDecl], channels: dict[str, ChannelConfig],
                 labels: list[str] | None = None) -> tuple[Route, ...]:
    routes = []
    names: set[str] = set()
    for index, decl in enumerate(declared):
        label = f"{labels[index] if labels else f'routes[{index}]'} ({decl.name})"
        if decl.name in names:
            raise ConfigError(f"{label}.name: duplicate route name")
        names.add(decl.name)
        for channel in [*decl.channels, *(c for step in decl.escalate for c in step.channels)]:
            if channel not in channels:
                raise ConfigError(f"{label}.channels: no channel named {channel[:40]!r}")
        try:
            routes.append(decl.to_route())
        except ValueError as exc:
            raise ConfigError(f"{label}: {exc}") from None
    return sort_routes(routes)


def _build_catalog(declared: list[CatalogDecl]) -> dict[str, CatalogDecl]:
    catalog: dict[str, CatalogDecl] = {}
    for index, entry in enumerate(declared):
        if entry.name in catalog:
            raise ConfigError(f"events[{index}] ({entry.name}).name: duplicate event name")
        catalog[entry.name] = entry
    return catalog


def _build_hooks(declared: list[HookDecl]) -> dict[str, CompiledHook]:
    try:
        return compile_hooks(declared)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """pydantic's multi-line report → one line: `path.to.key: problem` (and how many more)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    path = prefix
    for part in first["loc"]:
        # a loc part may be an unknown key exactly as written: escaped and cut like any name
        path += f"[{part}]" if isinstance(part, int) else (f".{clip(str(part))}" if path else clip(str(part)))
    message = clip(first["msg"].removeprefix("Value error, "), 200)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path or 'config'}: {message}{more}"


_ENV_EXAMPLES = {"net__allow_private": '["10.0.0.0/8"]', "redact__keys": '["password", "token"]',
                 "keys": '[{"name": "pr", "key": "env:PR_KEY"}]', "server": '{"listen": "127.0.0.1:8040"}'}


def _env_decode_error(detail: str) -> str:
    """pydantic-settings names only the top-level field it could not decode: find the variable, and say how
    to write it. The value itself stays out: ALERTD_KEYS or ALERTD_ADMIN_KEY-like values hold secrets."""
    found = re.search(r'field "(\w+)"', detail)
    field = found.group(1).lower() if found else ""
    prefix = f"alertd_{field}"
    for variable, value in sorted(os.environ.items()):
        lowered = variable.lower()
        if not field or not (lowered == prefix or lowered.startswith(prefix + "__")):
            continue
        kind = _env_kind(lowered.removeprefix("alertd_").split("__"))
        if kind is None or _is_json(value):
            continue
        default = '["a", "b"]' if kind == "list" else '{"key": "value"}'
        example = _ENV_EXAMPLES.get(lowered.removeprefix("alertd_"), default)
        return f"{clip(variable)}: a {kind} must be written as JSON, e.g. {example}"
    return f"ALERTD_{field.upper() or '…'}: a list or table must be written as JSON"


def _env_kind(path: list[str]) -> Literal["list", "table"] | None:
    """"list" or "table" for the settings field at `path` (["net", "allow_private"]), None for a scalar."""
    model: Any = Settings
    annotation: Any = None
    for part in path:
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return None
        annotation = model = fields[part].annotation
    if get_origin(annotation) is list:
        return "list"
    if get_origin(annotation) is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "table"
    return None


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _refuse_case_twins(data: dict[str, Any]) -> None:
    """Section names match whatever their case ([SERVER] is [server], as ALERTD_SERVER__… is): two that differ
    only by case would both be read and one silently dropped. Checked in each section's keys as well."""
    _refuse_twins(data, "")
    for name, value in data.items():
        tables = value if isinstance(value, list) else [value]
        for index, table in enumerate(tables):
            if isinstance(table, dict):
                _refuse_twins(table, f"{clip(name)}[{index}]." if isinstance(value, list) else f"{clip(name)}.")


def _refuse_twins(table: dict[str, Any], where: str) -> None:
    seen: dict[str, str] = {}
    for key in table:
        other = seen.setdefault(key.lower(), key)
        if other != key:
            raise ConfigError(f"{where}{clip(key)}: the same name as {clip(other)!r} but for case; write one of them")


def load_config(path: str | Path | None) -> Config:
    """Read, validate and cross-check. Raises ConfigError with one line naming the key."""
    data: dict[str, Any] = {}
    source = Path(path) if path else None
    if source is not None:
        try:
            with source.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such file") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    _refuse_case_twins(data)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except SettingsError as exc:  # an ALERTD_ variable for a list or table that is not JSON
        raise ConfigError(_env_decode_error(str(exc))) from None
    return Config(settings, source)
