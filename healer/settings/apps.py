"""``apps:``: each app healer looks after, described once.

An app block names the app's own things (log files, journald units, its
service, venv, checkout, env file, fallback models, the Redis and
PostgreSQL it uses). Bundled patterns do not name hosts' things: they name
roles (``@service``, ``@redis``, ``@venv`` ...) that an event resolves
through its app (:mod:`healer.remedy.apps`), so one app block makes every
bundled pattern actionable. The block is the allowlist: nothing it does not
name can be touched.

An event belongs to the app whose block lists its source (a log file or
journald unit here gets ``service: <app>``); with a single app, every event
does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, model_validator

from healer.settings.fields import AbsPath, Duration, Items, Model, Name, RelPathText, Text
from healer.settings.validation import Problem

APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", re.ASCII)
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$", re.ASCII)
MODEL_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:@+-]*$", re.ASCII)
# Where a client's "connection refused" counts as this host's Redis or PostgreSQL.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind
DEFAULT_PORTS = {"redis": 6379, "postgres": 5432}


def host_port(raw: Any) -> tuple[str, int]:
    """``'127.0.0.1:6379'`` or ``'[::1]:6379'`` -> (host, port); the one parser of addresses in settings."""
    m = re.match(r"^\[?([^\[\]]+?)\]?:(\d{1,5})$", raw) if isinstance(raw, str) else None
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"expected 'host:port' like '127.0.0.1:6379', got {raw!r}")
    return m.group(1), int(m.group(2))


def _place(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host.strip("[]").lower(), port


def same_place(seen: str, expect: str) -> bool:
    """``127.0.0.1:6379`` and ``localhost:6379`` are one place; another port or a remote host is not.

    The one comparison of "where the line says the client went" with "where the service
    listens": the restart action refuses on it, and the corpus score counts a fix as automatic
    only where it would pass (healer.rules.corpus).
    """
    (h1, p1), (h2, p2) = _place(seen), _place(expect)
    return p1 == p2 and (h1 == h2 or (h1 in LOCAL_HOSTS and h2 in LOCAL_HOSTS))


def default_address(role: str) -> str | None:
    """``"redis.address"`` -> ``"127.0.0.1:6379"``: where a service listens when no app names it."""
    head, _, rest = role.partition(".")
    return f"127.0.0.1:{DEFAULT_PORTS[head]}" if rest == "address" and head in DEFAULT_PORTS else None


def _unit_or_mapping(raw: Any) -> Any:
    """``service: shop.service`` is short for ``service: {unit: shop.service}``."""
    return {"unit": raw} if isinstance(raw, str) else raw


def _path_or_mapping(raw: Any) -> Any:
    return {"path": raw} if isinstance(raw, str) else raw


def _env_key(raw: str) -> str:
    if not ENV_KEY.match(raw):
        raise ValueError(f"{raw!r} is not a variable name like OPENAI_MODEL")
    return raw


def _model_value(raw: str) -> str:
    if not MODEL_VALUE.match(raw):
        raise ValueError(f"{raw!r} is not a plain model name like gpt-4o-mini")
    return raw


class ServiceRef(Model):
    """A systemd unit or a supervisord program (exactly one)."""

    unit: Name | None = None
    supervisor: Name | None = None
    verify_tcp: Text | None = None
    verify_http: Text | None = None
    stay_up: Duration | None = None

    @model_validator(mode="after")
    def _one_manager(self) -> ServiceRef:
        if (self.unit is None) == (self.supervisor is None):
            raise Problem("unit", "name exactly one of unit (systemd) or supervisor (a supervisord program)")
        return self

    @property
    def name(self) -> str:
        return self.unit or self.supervisor or ""


class Dependency(ServiceRef):
    """A Redis or PostgreSQL the app uses: what to restart and where it listens."""

    address: Annotated[tuple[str, int] | None, BeforeValidator(lambda v: None if v is None else host_port(v))] = None

    @property
    def local(self) -> bool:
        return self.address is None or self.address[0] in LOCAL_HOSTS


class Checkout(Model):
    path: AbsPath
    remote: Name = "origin"
    branch: Name | None = None
    strategy: Literal["ff-only", "merge", "rebase"] = "ff-only"
    # Paths (.gitignore lines) a pull may not change without a human: actions.git_sync.repos.<app>.protected.
    protected: Items[Name] | None = None


class EnvFile(Model):
    path: AbsPath
    template: AbsPath | None = None


class ModelSwitch(Model):
    """One provider's model setting: where it lives, the primary and the fallback."""

    key: Annotated[Name, AfterValidator(_env_key)] = "MODEL"
    fallback: Annotated[Name, AfterValidator(_model_value)]
    primary: Annotated[Name, AfterValidator(_model_value)] | None = None
    file: AbsPath | None = None  # default: the app's env_file
    revert_after: Duration | None = None


class AppSettings(Model):
    logs: Items[RelPathText] = ()
    journald: Items[Name] = ()
    service: Annotated[ServiceRef | None, BeforeValidator(_unit_or_mapping)] = None
    venv: AbsPath | None = None
    packages: Items[Name] = ()  # what pip_install may install into the venv
    modules: Mapping[str, str] = {}  # import name -> package, where they differ (yaml: PyYAML)
    checkout: Annotated[Checkout | None, BeforeValidator(_path_or_mapping)] = None
    env_file: Annotated[EnvFile | None, BeforeValidator(_path_or_mapping)] = None
    models: Mapping[str, ModelSwitch] = {}  # provider (openai, anthropic, ...) -> its switch
    redis: Annotated[Dependency | None, BeforeValidator(_unit_or_mapping)] = None
    postgres: Annotated[Dependency | None, BeforeValidator(_unit_or_mapping)] = None

    @model_validator(mode="after")
    def _models_need_a_file(self) -> AppSettings:
        for provider, switch in self.models.items():
            if switch.file is None and self.env_file is None:
                raise Problem(f"models.{provider}.file", "give the file that holds the model, or set env_file")
        return self


def check_app_names(apps: Mapping[str, Any]) -> None:
    for name in apps:
        if not isinstance(name, str) or not APP_NAME.match(name):
            raise Problem(str(name), "an app name is letters, digits, '-' and '_' (it names incidents and targets)")


def app_sources(raw: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``sources.files`` and ``sources.journald`` entries the app blocks imply, from the raw mapping."""
    files: list[dict[str, Any]] = []
    journald: list[dict[str, Any]] = []
    apps = raw.get("apps")
    if not isinstance(apps, dict):
        return files, journald
    for name, app in apps.items():
        if not isinstance(app, dict):
            continue
        logs = app.get("logs") or []
        files += [{"path": p, "service": name} for p in logs if isinstance(logs, list) and isinstance(p, str)]
        units = app.get("journald") or []
        if isinstance(units, list) and units and all(isinstance(u, str) for u in units):
            journald.append({"units": list(units), "service": name})
    return files, journald


__all__ = [
    "DEFAULT_PORTS",
    "LOCAL_HOSTS",
    "AppSettings",
    "Checkout",
    "Dependency",
    "EnvFile",
    "ModelSwitch",
    "ServiceRef",
    "app_sources",
    "check_app_names",
    "default_address",
    "host_port",
    "same_place",
]
