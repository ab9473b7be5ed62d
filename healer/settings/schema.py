"""The configuration schema: one pydantic model per section, for the whole file.

Why pydantic v2: one declarative mechanism instead of hand-written getters,
errors carry the full key path (dict keys and list indexes) for the one
message shape :mod:`healer.settings.validation` prints, and ``extra="forbid"``
makes every unknown key an error. Durations and sizes come only from
:mod:`healer.settings.types`.

Action sections (``actions.<name>``) stay raw mappings here: the settings
layer does not know the actions. :mod:`healer.remedy.registry` validates them
and :mod:`healer.app.ruleset` puts the typed result in ``Settings.actions``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from healer.core.enums import Priority, Route, Severity, Unaddressed
from healer.core.paths import bundled_patterns_dir
from healer.settings.apps import AppSettings, app_sources, check_app_names
from healer.settings.fields import (
    Duration,
    Flag,
    Items,
    Model,
    Name,
    Number,
    PatternDir,
    Port,
    RelPath,
    RelPathText,
    Text,
    from_file,
)
from healer.settings.lifecycle import LifecycleSettings
from healer.settings.preconditions import PreconditionsSettings
from healer.settings.triage import ServiceSettings, TriageSettings
from healer.settings.types import ByteSize
from healer.settings.webhooks import WebhookSettings

DEFAULT_ROUTING = {"critical": "immediate", "high": "immediate", "medium": "digest", "low": "none"}
LOG_LEVELS = ("debug", "info", "warning", "error")


def _chat_id(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(
            f"expected a list of integer chat ids, got {raw!r}; "
            "message the bot, then read the id from getUpdates (see README)"
        )
    return raw


def _log_level(raw: Any) -> str:
    if raw not in LOG_LEVELS:
        raise ValueError(f"unknown level {raw!r}; use debug, info, warning or error")
    return str(raw)


def _routing(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValueError(f"expected a mapping of severity -> route, got {raw!r}")
    routing = dict(DEFAULT_ROUTING)
    for sev, how in raw.items():
        if sev not in {s.value for s in Severity}:
            raise ValueError(f"unknown severity {sev!r}; use critical, high, medium or low")
        if how not in {r.value for r in Route}:
            raise ValueError(f"{sev}: unknown route {how!r}; use immediate, digest or none")
        routing[sev] = how
    return routing


def _priority_routing(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValueError(f"expected a mapping of priority -> route, got {raw!r}")
    routing = dict(DEFAULT_PRIORITY_ROUTING)
    for p, how in raw.items():
        if p not in {x.value for x in Priority}:
            raise ValueError(f"unknown priority {p!r}; use P0, P1, P2 or P3")
        if how not in {r.value for r in Route}:
            raise ValueError(f"{p}: unknown route {how!r}; use immediate, digest or none")
        routing[p] = how
    return routing


# Incident news routes by its triage (healer.engine.triage): P0/P1 page now, P2 waits for the digest, P3 is silent.
DEFAULT_PRIORITY_ROUTING = {"P0": "immediate", "P1": "immediate", "P2": "digest", "P3": "none"}

ChatId = Annotated[int, BeforeValidator(_chat_id)]
Interval = Annotated[Duration, Field(ge=1)]
Percent = Annotated[Number, Field(ge=0, le=100)]


class FileSource(Model):
    path: RelPathText
    service: Text = Field(default="", validate_default=True)

    @field_validator("service", mode="after")
    @classmethod
    def _service(cls, v: str, info: ValidationInfo) -> str:
        path = info.data.get("path")
        return v or (Path(path).stem if path is not None else "")


class JournaldSourceSettings(Model):
    units: Items[Name] = ()
    service: Text = Field(default="", validate_default=True)
    directory: Text | None = None
    file: Text | None = None

    @field_validator("service", mode="after")
    @classmethod
    def _service(cls, v: str, info: ValidationInfo) -> str:
        units = info.data.get("units") or ()
        return v or (units[0] if units else "journal")


class MultilineSettings(Model):
    """Assembling a traceback, a libpq error, git's output or a stack trace into one event (file sources)."""

    enabled: Flag = True
    max_lines: Annotated[int, Field(strict=True, ge=2)] = 200
    max_bytes: Annotated[ByteSize, Field(ge=256)] = 65536
    # An event at the end of what was written waits this long for a next line before it is matched as it is.
    flush_after: Annotated[Duration, Field(gt=0)] = 1.0


class SourcesSettings(Model):
    files: Items[FileSource] = ()
    journald: Items[JournaldSourceSettings] = ()
    max_line_bytes: Annotated[ByteSize, Field(ge=256)] = 65536
    max_catchup_age: Duration = 0.0
    multiline: MultilineSettings = MultilineSettings()


class EngineSettings(Model):
    verify_window: Duration = 60.0
    # Lines of the incident that happened (or, with no time of their own, arrived) within this long after a
    # fix finished are its backlog and in-flight tail, never a recurrence. An action's own verify_grace wins.
    verify_grace: Duration = 5.0
    fix_budget_per_hour: Annotated[int, Field(strict=True, ge=1)] = 10
    breaker_failures: Annotated[int, Field(strict=True, ge=1)] = 3
    breaker_window: Duration = 3600.0
    breaker_cooldown: Duration = 1800.0
    failure_memory: Duration = 86400.0
    approval_ttl: Duration = 3600.0
    event_retention_days: Annotated[Number, Field(ge=0)] = 7.0
    max_events: Annotated[int, Field(strict=True, ge=100)] = 200_000
    # Incidents are capped like events: distinct hostile lines must not grow the store without bound.
    max_incidents: Annotated[int, Field(strict=True, ge=100)] = 50_000
    drain_timeout: Duration = 20.0


class TelegramSettings(Model):
    token_env: Name = "HEALER_TELEGRAM_TOKEN"  # noqa: S105 - the variable name, not a secret
    token: Annotated[str | None, Field(repr=False, exclude=True)] = None
    allowed_chat_ids: Items[ChatId] = ()
    notify_chat_ids: Items[ChatId] = Field(default=(), validate_default=True)
    base_url: Name | None = None
    digest_interval: Interval = 600.0
    update_interval: Interval = 300.0
    health_interval: Interval = 300.0
    routing: Annotated[Mapping[str, str], BeforeValidator(_routing)] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTING)
    )
    priority_routing: Annotated[Mapping[str, str], BeforeValidator(_priority_routing)] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITY_ROUTING)
    )
    # Fleet (docs/FLEET.md): more names this host answers to in chat ("health web1"), besides ``host``.
    aliases: Items[Name] = ()
    # A group command naming no host: answer it, hint once per chat how to address one, or ignore it.
    unaddressed: Unaddressed = Unaddressed.ANSWER

    @field_validator("token", mode="before")
    @classmethod
    def _no_token_in_file(cls, v: Any, info: ValidationInfo) -> Any:
        if from_file(info):
            raise ValueError("tokens never go in the YAML; put it in .env and name it in token_env")
        return v

    @field_validator("notify_chat_ids", mode="after")
    @classmethod
    def _notify_defaults_to_allowed(cls, v: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        return v or tuple(info.data.get("allowed_chat_ids") or ())

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    def with_secrets(self, env: Mapping[str, str]) -> Self:
        return self.model_copy(update={"token": env.get(self.token_env) or None})


class MetricsSettings(Model):
    enabled: Flag = False
    host: Name = "127.0.0.1"
    port: Port = 9322


class HealthSettings(Model):
    mounts: Items[Name] = ("/",)
    services: Items[Name] = ()
    disk_threshold: Percent = 90.0
    memory_threshold: Percent = 90.0


class Settings(Model):
    """The validated configuration.

    ``source`` is the file it came from, ``raw`` the mapping after overrides
    (what a reload diffs), ``overrides`` each key set from the environment or
    ``.env`` with where it came from (``kill_switch (HEALER__KILL_SWITCH, .env:3)``)
    so the daemon can say that editing the file will not change it.
    """

    source: str = ""
    kill_switch: Flag = False
    dry_run: Flag = False
    state_dir: RelPath = Field(default=Path("./state"), validate_default=True)
    # The bundled set is the entry `bundled`; a list that leaves it out replaces it (absent or empty: [bundled]).
    patterns_dirs: Items[PatternDir] = Field(default=(), validate_default=True)
    # Pattern ids turned off (bundled or own); the ruleset refuses an id no loaded pattern has.
    patterns_disabled: Items[Name] = ()
    host: Text = Field(default="", validate_default=True)
    log_level: Annotated[str, AfterValidator(_log_level)] = "info"
    sources: SourcesSettings = SourcesSettings()
    engine: EngineSettings = EngineSettings()
    telegram: TelegramSettings = TelegramSettings()
    metrics: MetricsSettings = MetricsSettings()
    health: HealthSettings = HealthSettings()
    webhooks: WebhookSettings = WebhookSettings()
    apps: Mapping[str, AppSettings] = Field(default_factory=dict)
    preconditions: PreconditionsSettings = PreconditionsSettings()
    services: Mapping[str, ServiceSettings] = Field(default_factory=dict)
    triage: TriageSettings = TriageSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    # Raw here (see the module docstring); typed by the ruleset before anything runs a fix.
    actions: Mapping[str, Any] = Field(default_factory=dict)
    raw: Mapping[str, Any] = Field(default_factory=dict, repr=False, exclude=True)
    overrides: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _app_sources(cls, raw: Any) -> Any:
        """An app's logs and journald units are sources whose events belong to it (``service: <app>``)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("apps"), dict):
            return raw
        files, journald = app_sources(raw)
        if not files and not journald:
            return raw
        given = raw.get("sources")
        sources: dict[str, Any] = given if isinstance(given, dict) else {}
        merged = dict(sources)
        for key, extra in (("files", files), ("journald", journald)):
            have = sources.get(key)
            if extra and (have is None or isinstance(have, list)):  # anything else: the schema names the error
                merged[key] = [*(have or []), *extra]
        return {**raw, "sources": merged}

    @field_validator("apps", mode="before")
    @classmethod
    def _app_names(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, dict):
            check_app_names(v)
        return v

    @field_validator("patterns_dirs", mode="after")
    @classmethod
    def _default_patterns(cls, v: tuple[Path, ...]) -> tuple[Path, ...]:
        for i, d in enumerate(v):
            if d in v[:i]:
                # Loaded twice, every id of it would be its own duplicate.
                raise ValueError(f"{str(d)!r} is listed twice (entries {v.index(d) + 1} and {i + 1}); list it once")
        return v or (bundled_patterns_dir(),)

    @field_validator("host", mode="after")
    @classmethod
    def _default_host(cls, v: str) -> str:
        return v or os.uname().nodename

    @field_validator("actions", mode="before")
    @classmethod
    def _sections(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of action name -> settings, got {v!r}")
        for name, section in v.items():
            if section is not None and not isinstance(section, dict):
                raise ValueError(f"{name}: expected a mapping of settings, got {section!r}")
        return v

    def with_secrets(self, env: Mapping[str, str]) -> Self:
        return self.model_copy(
            update={"telegram": self.telegram.with_secrets(env), "webhooks": self.webhooks.with_secrets(env)}
        )


__all__ = [
    "EngineSettings",
    "FileSource",
    "HealthSettings",
    "JournaldSourceSettings",
    "MetricsSettings",
    "PreconditionsSettings",
    "ServiceSettings",
    "Settings",
    "SourcesSettings",
    "TelegramSettings",
    "TriageSettings",
    "WebhookSettings",
]
