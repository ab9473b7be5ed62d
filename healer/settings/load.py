"""Load the configuration: file -> YAML -> ``.env`` -> ``HEALER__`` overrides -> validate -> ``Settings``.

* The file is size-checked before it is read and parsed by the same safe YAML
  loader as pattern files (no aliases, a depth guard).
* Secrets and overrides come from the process environment over the ``.env``
  *beside the config file*. The working directory's ``.env`` is never read: an
  app's own ``.env`` must not rewrite healer's config (issue 19 #1).
* ``HEALER__SECTION__KEY=value`` sets ``section.key`` in the raw mapping
  before validation, so overrides are validated like the file. An override
  may not widen what healer may do or who may reach it (action allowlists,
  chat ids, listen addresses, pattern directories): those come from the file.
* Every error names where the bad value came from: the file and dotted key,
  ``HEALER__X (environment)``, or ``/etc/healer/.env:3``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv.parser import parse_stream

from healer.core.errors import ConfigError
from healer.settings.safeyaml import MAX_BYTES, YamlProblem, load_with_node, read_capped
from healer.settings.schema import Settings
from healer.settings.validation import INTERNAL_FIELDS, SettingsInvalid, known_keys, validate_model

DEFAULT_CONFIG_PATH = "/etc/healer/config.yaml"
ENV_PREFIX = "HEALER__"
MAX_CONFIG_BYTES = MAX_BYTES
# Keys an override may not set: each widens what a fix may touch or who may reach healer.
PROTECTED_KEYS = (
    "actions",
    "apps",  # an app block is an allowlist too
    "patterns_dirs",
    "patterns_disabled",  # could switch off an escalation or security pattern
    "telegram.allowed_chat_ids",
    "telegram.allowed_user_ids",  # who may approve a fix
    "telegram.allow_chat_admins",
    "telegram.admins_ttl",
    "telegram.notify_chat_ids",
    "telegram.base_url",
    "webhooks.host",
    "metrics.host",
)


@dataclass(frozen=True)
class Override:
    key: str  # dotted config key, e.g. "kill_switch"
    variable: str  # HEALER__KILL_SWITCH
    origin: str  # "environment" or "/etc/healer/.env:3"
    value: str

    def describe(self) -> str:
        return f"{self.key} (set by {self.variable} from {self.origin})"


@dataclass(frozen=True)
class Environment:
    """The variables healer sees, and where each came from (``.env`` file and line; absent: the environment)."""

    values: Mapping[str, str]
    origins: Mapping[str, str]

    def origin(self, name: str) -> str:
        return self.origins.get(name, "environment")


def resolve_config_path(cli_path: str | None, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(cli_path or env.get("HEALER_CONFIG") or DEFAULT_CONFIG_PATH)


def read_dotenv(path: Path) -> dict[str, tuple[str, int]]:
    """``NAME -> (value, line)`` from one ``.env``; an unparsable line is an error naming it.

    Values are taken as written (no ``${VAR}`` expansion): a secret is never rewritten.
    """
    try:
        text = read_capped(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    except YamlProblem as exc:
        raise ConfigError(str(path), "", exc.problem) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "file is not UTF-8 text") from None
    out: dict[str, tuple[str, int]] = {}
    for binding in parse_stream(io.StringIO(text)):
        # python-dotenv counts a binding from the blank lines before it; name the line itself.
        original = binding.original.string
        line = binding.original.line + original[: len(original) - len(original.lstrip())].count("\n")
        if binding.error:
            raise ConfigError(f"{path}:{line}", "", "cannot parse this line", "write NAME=value, or # for a comment")
        if binding.key is not None and binding.value is not None:
            out[binding.key] = (binding.value, line)
    return out


def environment(config_path: Path, environ: Mapping[str, str], *, dotenv: bool = True) -> Environment:
    """The process environment over the ``.env`` beside the config (the real environment wins,
    so systemd's EnvironmentFile and the shell keep control). Read afresh on every load and never
    written into ``os.environ``, so an edited ``.env`` takes effect on reload."""
    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    if dotenv:
        env_file = config_path.parent / ".env"
        for name, (value, line) in read_dotenv(env_file).items():
            values[name] = value
            origins[name] = f"{env_file}:{line}"
    for name, value in environ.items():
        values[name] = value
        origins.pop(name, None)
    return Environment(values, origins)


def _coerce(text: str) -> Any:
    """An override's text as YAML (``true``, ``30``, ``[/, /var]``), through the safe loader."""
    try:
        return load_with_node(text)[0]
    except YamlProblem:
        return text


def _protected(key: str) -> bool:
    return any(key == p or p.startswith(key + ".") or key.startswith(p + ".") for p in PROTECTED_KEYS)


def apply_overrides(raw: dict[str, Any], env: Environment) -> list[Override]:
    """Set ``section.key`` for every ``HEALER__SECTION__KEY``; returns what was set, in order."""
    applied: list[Override] = []
    for name in sorted(env.values):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        key = ".".join(parts)
        if _protected(key):
            raise ConfigError(
                f"{name} ({env.origin(name)})",
                key,
                "cannot be set from the environment or .env: it widens what healer may change or who may reach it",
                f"set {key} in the config file, or remove {name}",
            )
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = _coerce(env.values[name])
        applied.append(Override(key, name, env.origin(name), env.values[name]))
    return applied


def read_config(path: Path) -> dict[str, Any]:
    """The file's top-level mapping: size-checked, UTF-8, safe YAML (no aliases, bounded depth)."""
    try:
        data = read_capped(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError(
            str(path), "", "file not found", "pass -c PATH, set HEALER_CONFIG, or copy config.example.yaml"
        ) from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    except YamlProblem as exc:
        raise ConfigError(str(path), "", exc.problem) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "file is not UTF-8 text") from None
    try:
        raw, _ = load_with_node(text)
    except YamlProblem as exc:
        where = f" at line {exc.line}" if exc.line is not None else ""
        problem = exc.problem.removeprefix("invalid YAML: ")
        if exc.problem.startswith("invalid YAML"):
            raise ConfigError(str(path), "", f"invalid YAML{where}: {problem}", "fix the syntax") from None
        raise ConfigError(str(path), "", f"{problem}{where}", "fix the file") from None
    if raw is None:
        # Also what a reload sees mid-save when an editor truncates before writing:
        # falling back to defaults then would drop the allowlists and the chat ids.
        raise ConfigError(str(path), "", "the file is empty", "copy config.example.yaml and edit it")
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "", "the top level must be a mapping of keys", "see config.example.yaml")
    return raw


def validate(
    raw: Mapping[str, Any], path: str, env: Mapping[str, str] | Environment, overrides: tuple[Override, ...] = ()
) -> Settings:
    """``raw`` (after overrides) -> Settings with secrets from ``env``; ConfigError naming the origin."""
    environ = env if isinstance(env, Environment) else Environment(env, {})
    internal = sorted(str(k) for k in raw if k in INTERNAL_FIELDS)
    if internal:
        raise ConfigError(path, internal[0], "unknown key", f"known keys here: {known_keys(Settings)}")
    context = {"base": Path(path).resolve().parent, "env": environ.values}
    try:
        settings = validate_model(Settings, raw, "", context)
    except SettingsInvalid as exc:
        origin = next((o for o in overrides if _under(exc.key, o.key)), None)
        where = path if origin is None else f"{origin.variable} ({origin.origin})"
        raise ConfigError(where, exc.key, exc.problem, exc.fix) from None
    return settings.with_secrets(environ.values).model_copy(
        update={"source": path, "raw": raw, "overrides": tuple(o.describe() for o in overrides)}
    )


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith((prefix + ".", prefix + "["))


def load_settings(path: Path, environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    env = environment(path, os.environ if environ is None else environ, dotenv=dotenv)
    raw = read_config(path)
    overrides = apply_overrides(raw, env)
    return validate(raw, str(path), env, tuple(overrides))
