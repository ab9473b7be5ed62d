"""Validated settings of the webhook receiver.

Secrets never live in the YAML file (it is often in git and world-readable);
the YAML names environment variables (``*_env``) and we resolve them here, at
load time, into fields marked ``repr=False`` so they never reach a log line or
a traceback. An unset variable leaves that source without a secret, and its
route then refuses every delivery with 401: a half-configured receiver must
fail closed, but must not stop the daemon (the other sources still work).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from healer.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SentrySettings:
    secret_env: str = "HEALER_SENTRY_SECRET"  # noqa: S105 - a variable name, not a secret
    max_age: float = 300.0  # seconds; 0 disables the Sentry-Hook-Timestamp check
    secret: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class GlitchtipSettings:
    token_env: str = "HEALER_GLITCHTIP_TOKEN"  # noqa: S105 - a variable name, not a secret
    token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class AlertmanagerSettings:
    bearer_env: str | None = "HEALER_ALERTMANAGER_TOKEN"
    basic_user: str | None = None
    basic_password_env: str | None = None
    bearer: str = field(default="", repr=False)
    basic_password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9321
    max_body_bytes: int = 1_048_576
    max_depth: int = 32
    rate_per_minute: int = 120
    sentry: SentrySettings = field(default_factory=SentrySettings)
    glitchtip: GlitchtipSettings = field(default_factory=GlitchtipSettings)
    alertmanager: AlertmanagerSettings = field(default_factory=AlertmanagerSettings)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str, env: Mapping[str, str] | None = None) -> WebhookSettings:
        """Validate ``raw`` (the ``webhooks:`` block). ``env`` defaults to ``os.environ``."""
        environ: Mapping[str, str] = os.environ if env is None else env
        r = _Reader(raw, where)
        enabled = r.boolean("enabled", False)
        host = r.string("host", "127.0.0.1")
        port = r.integer("port", 9321, 0, 65535)
        max_body = r.integer("max_body_bytes", 1_048_576, 1024, 64 * 1_048_576)
        max_depth = r.integer("max_depth", 32, 2, 256)
        rate = r.integer("rate_per_minute", 120, 1, 100_000)

        s = _Reader(r.mapping("sentry"), f"{where}.sentry")
        secret_env = s.string("secret_env", "HEALER_SENTRY_SECRET")
        sentry = SentrySettings(
            secret_env=secret_env,
            max_age=float(s.integer("max_age", 300, 0, 86_400)),
            secret=environ.get(secret_env, ""),
        )
        s.done()

        g = _Reader(r.mapping("glitchtip"), f"{where}.glitchtip")
        token_env = g.string("token_env", "HEALER_GLITCHTIP_TOKEN")
        glitchtip = GlitchtipSettings(token_env=token_env, token=environ.get(token_env, ""))
        g.done()

        a = _Reader(r.mapping("alertmanager"), f"{where}.alertmanager")
        bearer_env = a.optional_string("bearer_env", "HEALER_ALERTMANAGER_TOKEN")
        basic_user = a.optional_string("basic_user", None)
        basic_password_env = a.optional_string("basic_password_env", None)
        if (basic_user is None) != (basic_password_env is None):
            raise ConfigError(
                path="",
                key=f"{where}.alertmanager.basic_user",
                problem="basic_user and basic_password_env must be set together",
                fix="set both, or remove both to use only the bearer token",
            )
        alertmanager = AlertmanagerSettings(
            bearer_env=bearer_env,
            basic_user=basic_user,
            basic_password_env=basic_password_env,
            bearer=environ.get(bearer_env, "") if bearer_env else "",
            basic_password=environ.get(basic_password_env, "") if basic_password_env else "",
        )
        a.done()
        r.done()
        return cls(
            enabled=enabled,
            host=host,
            port=port,
            max_body_bytes=max_body,
            max_depth=max_depth,
            rate_per_minute=rate,
            sentry=sentry,
            glitchtip=glitchtip,
            alertmanager=alertmanager,
        )


class _Reader:
    """Reads typed keys from one mapping and reports unknown keys at the end."""

    def __init__(self, raw: Any, where: str) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(path="", key=where, problem="must be a mapping", fix="use key: value pairs")
        self.raw = raw
        self.where = where
        self.seen: set[str] = set()

    def _err(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(path="", key=f"{self.where}.{key}", problem=problem, fix=fix)

    def _get(self, key: str) -> Any:
        self.seen.add(key)
        return self.raw.get(key)

    def boolean(self, key: str, default: bool) -> bool:
        val = self._get(key)
        if val is None:
            return default
        if not isinstance(val, bool):
            raise self._err(key, f"must be true or false, got {val!r}", "write true or false")
        return val

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        val = self._get(key)
        if val is None:
            return default
        if isinstance(val, bool) or not isinstance(val, int):
            raise self._err(key, f"must be an integer, got {val!r}", f"use a whole number from {lo} to {hi}")
        if not lo <= val <= hi:
            raise self._err(key, f"{val} is out of range", f"use a value from {lo} to {hi}")
        return val

    def string(self, key: str, default: str) -> str:
        val = self._get(key)
        if val is None:
            return default
        if not isinstance(val, str) or not val:
            raise self._err(key, f"must be a non-empty string, got {val!r}", "quote the value")
        return val

    def optional_string(self, key: str, default: str | None) -> str | None:
        if key in self.raw and self.raw[key] is None:
            self.seen.add(key)
            return None
        val = self._get(key)
        return default if val is None else self.string(key, "")

    def mapping(self, key: str) -> Any:
        return self._get(key)

    def done(self) -> None:
        unknown = sorted(str(k) for k in self.raw if k not in self.seen)
        if unknown:
            raise self._err(
                unknown[0],
                "unknown key",
                "known keys: " + ", ".join(sorted(self.seen)),
            )
