"""The ``webhooks:`` section: the receiver's listener and each source's credentials.

Secrets never live in the YAML file (it is often in git and world-readable);
the YAML names environment variables (``*_env``) and :meth:`with_secrets`
fills them from the same merged environment as the bot token (the process
environment over the ``.env`` beside the config), into fields marked
``repr=False`` so they never reach a log line or a traceback. An unset
variable leaves that source without a secret, and its route then refuses
every delivery with 401: a half-configured receiver must fail closed, but must
not stop the daemon (the other sources still work).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, ValidationInfo, field_validator

from healer.core.errors import ConfigError
from healer.settings.fields import Duration, Flag, Items, Model, Name, Port, Secret
from healer.settings.types import ByteSize
from healer.settings.validation import SettingsInvalid, validate_model


class SentrySettings(Model):
    secret_env: Name = "HEALER_SENTRY_SECRET"  # noqa: S105 - a variable name, not a secret
    max_age: Annotated[Duration, Field(le=86_400)] = 300.0  # seconds; 0 disables the timestamp check
    secret: Secret = ""

    def with_secrets(self, env: Mapping[str, str]) -> Self:
        return self.model_copy(update={"secret": env.get(self.secret_env, "")})


class GlitchtipSettings(Model):
    token_env: Name = "HEALER_GLITCHTIP_TOKEN"  # noqa: S105 - a variable name, not a secret
    token: Secret = ""

    def with_secrets(self, env: Mapping[str, str]) -> Self:
        return self.model_copy(update={"token": env.get(self.token_env, "")})


class AlertmanagerSettings(Model):
    bearer_env: Name | None = "HEALER_ALERTMANAGER_TOKEN"
    # Fleet: the labels that name the host an alert is about, first present one decides
    # (empty: every alert is this host's, the single-host default). See docs/FLEET.md.
    host_labels: Items[Name] = ()
    # Further names this host answers to in those labels (its FQDN, its address), besides ``host``.
    host_aliases: Items[Name] = ()
    # With host_labels set: act on an alert that carries none of them (a fleet-wide alert)?
    accept_unlabelled: Flag = False
    # Before basic_user, so basic_user's check can see it (pydantic validates in field order).
    basic_password_env: Name | None = None
    basic_user: Name | None = Field(default=None, validate_default=True)
    bearer: Secret = ""
    basic_password: Secret = ""

    @field_validator("basic_user", mode="after")
    @classmethod
    def _basic_pair(cls, v: str | None, info: ValidationInfo) -> str | None:
        if (v is None) != (info.data.get("basic_password_env") is None):
            raise ValueError(
                "basic_user and basic_password_env must be set together; "
                "set both, or remove both to use only the bearer token"
            )
        return v

    def with_secrets(self, env: Mapping[str, str]) -> Self:
        return self.model_copy(
            update={
                "bearer": env.get(self.bearer_env, "") if self.bearer_env else "",
                "basic_password": env.get(self.basic_password_env, "") if self.basic_password_env else "",
            }
        )


class WebhookSettings(Model):
    enabled: Flag = False
    host: Name = "127.0.0.1"
    port: Port = 9321
    max_body_bytes: Annotated[ByteSize, Field(ge=1024, le=64 * 1_048_576)] = 1_048_576
    max_depth: Annotated[int, Field(strict=True, ge=2, le=256)] = 32
    rate_per_minute: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 120
    sentry: SentrySettings = SentrySettings()
    glitchtip: GlitchtipSettings = GlitchtipSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()

    def with_secrets(self, env: Mapping[str, str]) -> Self:
        return self.model_copy(
            update={
                "sentry": self.sentry.with_secrets(env),
                "glitchtip": self.glitchtip.with_secrets(env),
                "alertmanager": self.alertmanager.with_secrets(env),
            }
        )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, where: str, env: Mapping[str, str]) -> WebhookSettings:
        """The ``webhooks:`` block alone, validated as the config loader does, secrets from ``env``."""
        try:
            block = validate_model(cls, raw, where, {"base": Path.cwd()})
        except SettingsInvalid as exc:
            raise ConfigError("", exc.key, exc.problem, exc.fix) from None
        return block.with_secrets(env)
