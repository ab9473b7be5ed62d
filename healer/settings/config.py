"""Load, validate and type the configuration.

One YAML file, secrets from the environment (and ``.env``), and an override
for every key through ``HEALER__SECTION__KEY`` variables, applied to the raw
mapping before validation so overrides are validated like the file is.

Every error names the file, the dotted key path, what is wrong and how to fix
it, because the operator reads it in ``journalctl`` at 3 a.m.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from healer.core.enums import Severity
from healer.core.errors import ConfigError, ParamError
from healer.core.paths import bundled_patterns_dir
from healer.remedy.builtin import REGISTRY

DEFAULT_CONFIG_PATH = "/etc/healer/config.yaml"
ENV_PREFIX = "HEALER__"
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class FileSource:
    path: str
    service: str


@dataclass(frozen=True)
class JournaldSourceSettings:
    units: tuple[str, ...]
    service: str
    directory: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class SourcesSettings:
    files: tuple[FileSource, ...] = ()
    journald: tuple[JournaldSourceSettings, ...] = ()
    max_line_bytes: int = 65536
    max_catchup_age: float = 0.0


@dataclass(frozen=True)
class EngineSettings:
    verify_window: float = 60.0
    fix_budget_per_hour: int = 10
    breaker_failures: int = 3
    breaker_window: float = 3600.0
    breaker_cooldown: float = 1800.0
    failure_memory: float = 86400.0
    approval_ttl: float = 3600.0
    event_retention_days: float = 7.0
    max_events: int = 200_000
    fix_timeout: float = 300.0
    drain_timeout: float = 20.0


@dataclass(frozen=True)
class TelegramSettings:
    token_env: str = "HEALER_TELEGRAM_TOKEN"  # noqa: S105 - the variable name, not a secret
    token: str | None = field(default=None, repr=False)
    allowed_chat_ids: tuple[int, ...] = ()
    notify_chat_ids: tuple[int, ...] = ()
    base_url: str | None = None
    digest_interval: float = 600.0
    update_interval: float = 300.0
    health_interval: float = 300.0
    routing: Mapping[str, str] = field(
        default_factory=lambda: {"critical": "immediate", "high": "immediate", "medium": "digest", "low": "none"}
    )

    @property
    def enabled(self) -> bool:
        return bool(self.token)


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9322


@dataclass(frozen=True)
class HealthSettings:
    mounts: tuple[str, ...] = ("/",)
    services: tuple[str, ...] = ()
    disk_threshold: float = 90.0
    memory_threshold: float = 90.0


@dataclass(frozen=True)
class Settings:
    """The validated configuration. ``source`` is the file it came from."""

    source: str
    kill_switch: bool = False
    dry_run: bool = False
    state_dir: Path = Path("./state")
    patterns_dirs: tuple[Path, ...] = ()
    host: str = ""
    log_level: str = "info"
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    webhooks: Any = None
    actions: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


class _V:
    """Typed getters that know the key path, so every error can name it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def err(self, key: str, problem: str, fix: str = "") -> ConfigError:
        return ConfigError(self.path, key, problem, fix)

    def mapping(self, raw: Any, key: str) -> Mapping[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise self.err(key, f"expected a mapping, got {type(raw).__name__}", "indent the keys under it")
        return raw

    def known(self, raw: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            where = f"{key}.{unknown[0]}" if key else str(unknown[0])
            raise self.err(where, "unknown key", f"known keys here: {', '.join(sorted(allowed))}")

    def boolean(self, raw: Mapping[str, Any], key: str, name: str, default: bool) -> bool:
        v = raw.get(name, default)
        if not isinstance(v, bool):
            raise self.err(_join(key, name), f"expected true or false, got {v!r}")
        return v

    def number(self, raw: Mapping[str, Any], key: str, name: str, default: float, minimum: float = 0) -> float:
        v = raw.get(name, default)
        if isinstance(v, str):
            v = parse_duration(v, lambda p: self.err(_join(key, name), p))
        if isinstance(v, bool) or not isinstance(v, int | float) or v < minimum:
            raise self.err(_join(key, name), f"expected a number >= {minimum}, got {v!r}")
        return float(v)

    def integer(self, raw: Mapping[str, Any], key: str, name: str, default: int, minimum: int = 0) -> int:
        v = raw.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.err(_join(key, name), f"expected a whole number >= {minimum}, got {v!r}")
        return v

    def string(self, raw: Mapping[str, Any], key: str, name: str, default: str | None) -> str | None:
        v = raw.get(name, default)
        if v is not None and not isinstance(v, str):
            raise self.err(_join(key, name), f"expected a string, got {v!r}")
        return v

    def strings(self, raw: Mapping[str, Any], key: str, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        v = raw.get(name, list(default))
        if v is None:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.err(_join(key, name), f"expected a list of strings, got {v!r}")
        return tuple(v)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str, err: Any = None) -> float:
    """'90', '30s', '5m', '2h', '7d' -> seconds. Used by config, patterns and the CLI."""
    t = text.strip().lower()
    try:
        if t and t[-1] in _UNITS:
            return float(t[:-1]) * _UNITS[t[-1]]
        return float(t)
    except ValueError:
        problem = f"{text!r} is not a duration; use seconds or a number with s, m, h, d or w (e.g. 5m)"
        if err is not None:
            raise err(problem) from None
        raise ValueError(problem) from None


def dotenv_environ(config_path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment as healer sees it: ``.env`` files under the real environment.

    Secrets live in ``.env`` beside the config (or in the working directory).
    Existing environment variables win, so systemd's EnvironmentFile and the
    shell keep control. The files are read afresh on every load and never
    written into ``os.environ``, so an edited ``.env`` takes effect on reload.
    """
    from dotenv import dotenv_values

    merged: dict[str, str] = {}
    for candidate in (Path.cwd() / ".env", config_path.parent / ".env"):
        if candidate.is_file():
            merged.update({k: v for k, v in dotenv_values(candidate).items() if v is not None})
    merged.update(environ)
    return merged


def _coerce_env_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """``HEALER__ENGINE__VERIFY_WINDOW=30`` sets ``engine.verify_window``; returns the keys set."""
    applied = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = _coerce_env_value(environ[name])
        applied.append(".".join(parts))
    return applied


def read_yaml(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            str(path), "", "file not found", "pass -c PATH, set HEALER_CONFIG, or copy config.example.yaml"
        ) from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), "", f"file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "file is not UTF-8 text") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(str(path), "", "YAML nesting is too deep", "fix the file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(path), "", f"invalid YAML at {where}{problem}", "fix the syntax") from None


def resolve_config_path(cli_path: str | None, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(cli_path or env.get("HEALER_CONFIG") or DEFAULT_CONFIG_PATH)


def load_settings(path: Path, environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    env: Mapping[str, str] = os.environ if environ is None else environ
    if dotenv:
        env = dotenv_environ(path, env)
    raw = read_yaml(path)
    if raw is None:
        # Also what a reload sees mid-save when an editor truncates before writing:
        # falling back to defaults then would drop the allowlists and the chat ids.
        raise ConfigError(str(path), "", "the file is empty", "copy config.example.yaml and edit it")
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "", "the top level must be a mapping of keys", "see config.example.yaml")
    apply_env_overrides(raw, env)
    return validate(raw, str(path), env)


TOP_KEYS = {
    "kill_switch",
    "dry_run",
    "state_dir",
    "patterns_dirs",
    "host",
    "log_level",
    "sources",
    "engine",
    "telegram",
    "metrics",
    "health",
    "webhooks",
    "actions",
}


def validate(raw: Mapping[str, Any], path: str, env: Mapping[str, str]) -> Settings:
    v = _V(path)
    v.known(raw, "", TOP_KEYS)
    base = Path(path).resolve().parent

    def rel(p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else base / q

    state_dir = v.string(raw, "", "state_dir", "./state") or "./state"
    pdirs = v.strings(raw, "", "patterns_dirs", ())
    patterns_dirs = tuple(rel(p) for p in pdirs) if pdirs else (bundled_patterns_dir(),)
    level = v.string(raw, "", "log_level", "info") or "info"
    if level not in {"debug", "info", "warning", "error"}:
        raise v.err("log_level", f"unknown level {level!r}", "use debug, info, warning or error")

    return Settings(
        source=path,
        kill_switch=v.boolean(raw, "", "kill_switch", False),
        dry_run=v.boolean(raw, "", "dry_run", False),
        state_dir=rel(state_dir),
        patterns_dirs=patterns_dirs,
        host=v.string(raw, "", "host", "") or os.uname().nodename,
        log_level=level,
        sources=_sources(v, v.mapping(raw.get("sources"), "sources"), rel),
        engine=_engine(v, v.mapping(raw.get("engine"), "engine")),
        telegram=_telegram(v, v.mapping(raw.get("telegram"), "telegram"), env),
        metrics=_metrics(v, v.mapping(raw.get("metrics"), "metrics")),
        health=_health(v, v.mapping(raw.get("health"), "health")),
        webhooks=_webhooks(v, raw.get("webhooks")),
        actions=_actions(v, v.mapping(raw.get("actions"), "actions"), rel),
        raw=raw,
    )


def _sources(v: _V, raw: Mapping[str, Any], rel: Any) -> SourcesSettings:
    v.known(raw, "sources", {"files", "journald", "max_line_bytes", "max_catchup_age"})
    files_raw = raw.get("files", [])
    if not isinstance(files_raw, list):
        raise v.err("sources.files", "expected a list of {path: <glob>, service: <name>}")
    files = []
    for i, item in enumerate(files_raw):
        key = f"sources.files[{i}]"
        if not isinstance(item, dict):
            raise v.err(key, "expected a mapping {path: <glob>, service: <name>}")
        v.known(item, key, {"path", "service"})
        p = v.string(item, key, "path", None)
        if not p:
            raise v.err(f"{key}.path", "missing", "give the log file path or glob, e.g. /var/log/app/*.log")
        service = v.string(item, key, "service", None) or Path(p).stem
        files.append(FileSource(str(rel(p)), service))
    jd_raw = raw.get("journald", [])
    if not isinstance(jd_raw, list):
        raise v.err("sources.journald", "expected a list of {units: [...], service: <name>}")
    journald = []
    for i, item in enumerate(jd_raw):
        key = f"sources.journald[{i}]"
        if not isinstance(item, dict):
            raise v.err(key, "expected a mapping {units: [...], service: <name>}")
        v.known(item, key, {"units", "service", "directory", "file"})
        units = v.strings(item, key, "units", ())
        journald.append(
            JournaldSourceSettings(
                units,
                v.string(item, key, "service", None) or (units[0] if units else "journal"),
                v.string(item, key, "directory", None),
                v.string(item, key, "file", None),
            )
        )
    return SourcesSettings(
        files=tuple(files),
        journald=tuple(journald),
        max_line_bytes=v.integer(raw, "sources", "max_line_bytes", 65536, 256),
        max_catchup_age=v.number(raw, "sources", "max_catchup_age", 0.0),
    )


def _engine(v: _V, raw: Mapping[str, Any]) -> EngineSettings:
    d = EngineSettings()
    names = set(d.__dataclass_fields__)
    v.known(raw, "engine", names)
    kw: dict[str, Any] = {}
    for name in names:
        default = getattr(d, name)
        if isinstance(default, int) and not isinstance(default, bool):
            kw[name] = v.integer(raw, "engine", name, default, 1 if name != "max_events" else 100)
        else:
            kw[name] = v.number(raw, "engine", name, default)
    return EngineSettings(**kw)


def _telegram(v: _V, raw: Mapping[str, Any], env: Mapping[str, str]) -> TelegramSettings:
    d = TelegramSettings()
    v.known(
        raw,
        "telegram",
        {
            "token_env",
            "allowed_chat_ids",
            "notify_chat_ids",
            "base_url",
            "digest_interval",
            "update_interval",
            "health_interval",
            "routing",
            "token",
        },
    )
    if "token" in raw:
        raise v.err("telegram.token", "tokens never go in the YAML", "put it in .env and name it in token_env")
    token_env = v.string(raw, "telegram", "token_env", d.token_env) or d.token_env
    ids: list[int] = []
    for name in ("allowed_chat_ids", "notify_chat_ids"):
        got = raw.get(name, [])
        if not isinstance(got, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in got):
            raise v.err(
                f"telegram.{name}",
                f"expected a list of integer chat ids, got {got!r}",
                "message the bot, then read the id from getUpdates (see README)",
            )
        ids = got if name == "allowed_chat_ids" else ids
    allowed = tuple(raw.get("allowed_chat_ids", []))
    notify = tuple(raw.get("notify_chat_ids", [])) or allowed
    routing = dict(d.routing)
    routing_raw = v.mapping(raw.get("routing"), "telegram.routing")
    for sev, how in routing_raw.items():
        if sev not in {s.value for s in Severity}:
            raise v.err(f"telegram.routing.{sev}", "unknown severity", "use critical, high, medium or low")
        if how not in {"immediate", "digest", "none"}:
            raise v.err(f"telegram.routing.{sev}", f"unknown route {how!r}", "use immediate, digest or none")
        routing[sev] = how
    return TelegramSettings(
        token_env=token_env,
        token=env.get(token_env) or None,
        allowed_chat_ids=allowed,
        notify_chat_ids=notify,
        base_url=v.string(raw, "telegram", "base_url", None),
        digest_interval=v.number(raw, "telegram", "digest_interval", d.digest_interval, 1),
        update_interval=v.number(raw, "telegram", "update_interval", d.update_interval, 1),
        health_interval=v.number(raw, "telegram", "health_interval", d.health_interval, 1),
        routing=routing,
    )


def _metrics(v: _V, raw: Mapping[str, Any]) -> MetricsSettings:
    v.known(raw, "metrics", {"enabled", "host", "port"})
    return MetricsSettings(
        enabled=v.boolean(raw, "metrics", "enabled", False),
        host=v.string(raw, "metrics", "host", "127.0.0.1") or "127.0.0.1",
        port=v.integer(raw, "metrics", "port", 9322),
    )


def _health(v: _V, raw: Mapping[str, Any]) -> HealthSettings:
    v.known(raw, "health", {"mounts", "services", "disk_threshold", "memory_threshold"})
    return HealthSettings(
        mounts=v.strings(raw, "health", "mounts", ("/",)),
        services=v.strings(raw, "health", "services", ()),
        disk_threshold=v.number(raw, "health", "disk_threshold", 90.0),
        memory_threshold=v.number(raw, "health", "memory_threshold", 90.0),
    )


def _webhooks(v: _V, raw: Any) -> Any:
    try:
        from healer.settings.webhooks import WebhookSettings
    except ImportError:  # the receiver is optional at import time; its settings are not
        return raw
    try:
        return WebhookSettings.from_mapping(v.mapping(raw, "webhooks"), "webhooks")
    except ConfigError as exc:
        raise ConfigError(v.path, exc.key, exc.problem, exc.fix) from None


def _actions(v: _V, raw: Mapping[str, Any], rel: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, section in raw.items():
        key = f"actions.{name}"
        if name not in REGISTRY:
            raise v.err(key, f"unknown action {name!r}", f"known actions: {', '.join(sorted(REGISTRY))}")
        try:
            out[name] = REGISTRY[name].parse_settings(v.mapping(section, key), key)
        except ParamError as exc:
            raise ConfigError(v.path, key, str(exc).removeprefix(f"{key}: ").removeprefix(f"{key}")) from None
    for name, cls in REGISTRY.items():
        if name not in out:
            try:
                out[name] = cls.parse_settings({}, f"actions.{name}")
            except ParamError:
                out[name] = None  # not configured: every use of it is refused
    return out
