"""The actions by name, as the config and the pattern files see them.

Two load-time jobs, so neither the settings layer nor the pattern loader has
to import the actions: :func:`parse_action_sections` types the config's
``actions.<name>`` sections (each action's own pydantic model, through its
``parse_settings``), and :func:`step_checker` gives the pattern loader the
callable that refuses an unknown action or bad params in a ``remediation``
step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from healer.core.errors import ConfigError, ParamError
from healer.remedy.base import Action
from healer.remedy.builtin import REGISTRY
from healer.settings.validation import SettingsInvalid

StepCheck = Callable[[str, Mapping[str, str]], None]


def known_actions() -> str:
    return ", ".join(sorted(REGISTRY))


def action_class(name: str) -> type[Action]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ParamError(f"unknown action {name!r}; known: {known_actions()}") from None


def parse_action_sections(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``actions.<name>`` mappings -> each action's settings object, for every registered action.

    An action without a section gets its empty settings, or None when it needs
    some (then every fix with it is refused). Errors are ConfigError naming
    ``path`` and the full key, e.g. ``actions.restart.units.redis.timeout``.
    """
    out: dict[str, Any] = {}
    for name, section in raw.items():
        key = f"actions.{name}"
        if name not in REGISTRY:
            raise ConfigError(path, key, f"unknown action {name!r}", f"known actions: {known_actions()}")
        try:
            out[name] = REGISTRY[name].parse_settings(section or {}, key)
        except SettingsInvalid as exc:
            raise ConfigError(path, exc.key, exc.problem, exc.fix) from None
        except ParamError as exc:
            raise ConfigError(path, key, str(exc).removeprefix(f"{key}: ").removeprefix(key)) from None
    for name, cls in REGISTRY.items():
        if name not in out:
            try:
                out[name] = cls.parse_settings({}, f"actions.{name}")
            except ParamError:
                out[name] = None  # not configured: every use of it is refused
    return out


def step_checker(actions: Mapping[str, Any] | None) -> StepCheck:
    """The pattern loader's check of one remediation step against the actions and their settings."""
    settings = actions or {}

    def check(name: str, params: Mapping[str, str]) -> None:
        action_class(name).validate_params(params, settings.get(name))

    return check
