"""What an app block lets each action touch, and how a pattern's roles name it.

An app block (``apps.<name>`` in the config) is turned into allowlist
entries of the actions' own sections, named after the app:

=============  ===========================================  =================
role           allowlist entry                              from
=============  ===========================================  =================
``@service``   ``actions.restart.units.<app>``              ``service``
``@redis``     ``actions.restart.units.<app>.redis``        ``redis``
``@postgres``  ``actions.restart.units.<app>.postgres``     ``postgres``
``@venv``      ``actions.pip_install.venvs.<app>``          ``venv``, ``packages``
``@checkout``  ``actions.git_sync.repos.<app>``             ``checkout``
``@env_file``  ``actions.restore_file.files.<app>.env``     ``env_file`` (with a template)
``@model``     ``actions.set_config.files.<app>.model.P``   ``models.P`` (the first for ``@model``)
=============  ===========================================  =================

so the allowlist stays explicit (it is what the app block names) and the
actions need no notion of apps. A pattern's params say ``service: "@redis"``;
at fix time :func:`resolve` turns the role into the entry of the event's app.
Without an app block, a role falls back to the names the bundled patterns
always used (``redis``, ``postgresql``, ``app``, ``app-env``, ``MODEL``,
``fallback``), so an ``actions:``-only config keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from healer.core.errors import ActionRefused, ConfigError
from healer.settings.apps import DEFAULT_PORTS, AppSettings, Dependency, ServiceRef

ROLE_PREFIX = "@"
# role -> the name bundled patterns used before app blocks: the fallback when an event has no app.
LEGACY: Mapping[str, str] = {
    "service": "",  # the event's own service name
    "redis": "redis",
    "postgres": "postgresql",
    "venv": "",
    "checkout": "app",
    "env_file": "app-env",
    "model": "app-env",
    "model.key": "MODEL",
    "model.fallback": "fallback",
    "redis.address": "127.0.0.1:6379",
    "postgres.address": "127.0.0.1:5432",
}
ROLES = frozenset({"service", "redis", "postgres", "venv", "checkout", "env_file", "model"})


def role_of(value: str) -> str | None:
    """``"@redis"`` -> ``"redis"``; ``"@model.openai.key"`` -> ``"model.openai.key"``; None for plain text."""
    return value[1:] if value.startswith(ROLE_PREFIX) else None


def check_role(role: str) -> str | None:
    """A load-time complaint about a role name, or None when it is one healer knows."""
    head, _, rest = role.partition(".")
    if head not in ROLES:
        return f"unknown role '@{role}'; known: " + ", ".join(f"@{r}" for r in sorted(ROLES))
    if head == "model":
        parts = rest.split(".") if rest else []
        tail = parts[-1] if parts and parts[-1] in ("key", "fallback") else None
        if len(parts) - (tail is not None) > 1:
            return f"'@{role}': write @model, @model.key, @model.fallback or @model.<provider>[.key|.fallback]"
    elif head in ("redis", "postgres"):
        if rest not in ("", "address"):
            return f"'@{role}': write @{head} or @{head}.address"
    elif rest:
        return f"'@{role}': the role @{head} takes no suffix"
    return None


def _service_entry(ref: ServiceRef, address: tuple[str, int] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = (
        {"manager": "systemd", "unit": ref.unit}
        if ref.unit is not None
        else {"manager": "supervisor", "unit": ref.supervisor}
    )
    tcp = ref.verify_tcp or (f"{address[0]}:{address[1]}" if address is not None else None)
    for key, value in (("verify_tcp", tcp), ("verify_http", ref.verify_http), ("stay_up", ref.stay_up)):
        if value is not None:
            entry[key] = value
    return entry


def _sections_of(name: str, app: AppSettings) -> dict[str, dict[str, dict[str, Any]]]:
    """``{action: {allowlist key under it: {name: entry}}}`` for one app."""
    out: dict[str, dict[str, dict[str, Any]]] = {}

    def add(action: str, under: str, key: str, entry: dict[str, Any]) -> None:
        out.setdefault(action, {}).setdefault(under, {})[key] = entry

    if app.service is not None:
        add("restart", "units", name, _service_entry(app.service))
    for role, dep in (("redis", app.redis), ("postgres", app.postgres)):
        if isinstance(dep, Dependency) and dep.local:
            add("restart", "units", f"{name}.{role}", _service_entry(dep, dep.address))
    if app.venv is not None and app.packages:
        venv: dict[str, Any] = {"python": str(app.venv / "bin" / "python"), "allowed": list(app.packages)}
        if app.modules:
            venv["packages"] = dict(app.modules)
        add("pip_install", "venvs", name, venv)
    if app.checkout is not None:
        repo = app.checkout.model_dump(exclude_none=True)
        add("git_sync", "repos", name, {**repo, "path": str(app.checkout.path)})
    if app.env_file is not None and app.env_file.template is not None:
        env = {"path": str(app.env_file.path), "template": str(app.env_file.template)}
        add("restore_file", "files", f"{name}.env", env)
    for provider, switch in app.models.items():
        path = switch.file or (app.env_file.path if app.env_file is not None else None)
        values = [switch.fallback, *([switch.primary] if switch.primary else [])]
        entry: dict[str, Any] = {"path": str(path), "keys": {switch.key: values}}
        if switch.revert_after is not None:
            entry["revert_after"] = switch.revert_after
        add("set_config", "files", f"{name}.model.{provider}", entry)
    return out


def with_app_sections(actions: Mapping[str, Any], apps: Mapping[str, AppSettings], path: str) -> dict[str, Any]:
    """The raw ``actions`` mapping with every app's allowlist entries added; a name defined twice is an error."""
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in actions.items()}
    for name, app in apps.items():
        for action, lists in _sections_of(name, app).items():
            section = merged.get(action)
            section = {} if section is None else dict(section)
            for under, entries in lists.items():
                have = dict(section.get(under) or {})
                for key, entry in entries.items():
                    if key in have:
                        raise ConfigError(
                            path,
                            f"actions.{action}.{under}.{key}",
                            f"also defined by apps.{name}",
                            "remove one of them: the app block already allowlists it",
                        )
                    have[key] = entry
                section[under] = have
            merged[action] = section
    return merged


@dataclass(frozen=True)
class AppRoles:
    """The roles of one app (or none: the legacy names), as pattern params name them."""

    name: str | None
    app: AppSettings | None

    def value(self, role: str, service: str) -> str:
        if self.app is None or self.name is None:
            legacy = LEGACY.get(role)
            if legacy is None:  # @model.<provider>[.key|.fallback]: the one legacy file, key and value
                tail = role.rsplit(".", 1)[-1]
                legacy = LEGACY["model." + tail] if tail in ("key", "fallback") else LEGACY["model"]
            return legacy or (service if role == "service" else "")
        return self._of_app(role, self.name, self.app)

    @staticmethod
    def _of_app(role: str, name: str, app: AppSettings) -> str:
        head, _, rest = role.partition(".")
        missing = ActionRefused(f"app {name!r} has no {head}: add apps.{name}.{_key_for(head)} to the config")
        if head == "service":
            if app.service is None:
                raise missing
            return name
        if head in ("redis", "postgres"):
            dep = app.redis if head == "redis" else app.postgres
            if dep is None:
                raise missing
            host, port = dep.address or ("127.0.0.1", DEFAULT_PORTS[head])
            if not dep.local:
                raise ActionRefused(f"apps.{name}.{head} is at {host}:{port}, not on this host: notify only")
            return f"{host}:{port}" if rest == "address" else f"{name}.{head}"
        if head == "venv":
            if app.venv is None or not app.packages:
                raise ActionRefused(f"app {name!r} has no venv with packages: set apps.{name}.venv and .packages")
            return name
        if head == "checkout":
            if app.checkout is None:
                raise missing
            return name
        if head == "env_file":
            if app.env_file is None or app.env_file.template is None:
                raise ActionRefused(f"app {name!r} has no env file template: set apps.{name}.env_file.template")
            return f"{name}.env"
        return _model_role(rest, name, app)


def _key_for(head: str) -> str:
    return "models" if head == "model" else head


def _model_role(rest: str, name: str, app: AppSettings) -> str:
    parts = rest.split(".") if rest else []
    field = parts.pop() if parts and parts[-1] in ("key", "fallback") else ""
    provider = parts[0] if parts else next(iter(app.models), "")
    switch = app.models.get(provider)
    if switch is None:
        what = f"a {provider} model" if parts else "a model"
        raise ActionRefused(f"app {name!r} has no {what}: add apps.{name}.models.{provider or '<provider>'}")
    if field == "key":
        return switch.key
    if field == "fallback":
        return switch.fallback
    return f"{name}.model.{provider}"


def roles_for(apps: Mapping[str, AppSettings], service: str) -> AppRoles:
    """The app an event of ``service`` belongs to: the block of that name, or the only one there is."""
    if service in apps:
        return AppRoles(service, apps[service])
    if len(apps) == 1:
        name, app = next(iter(apps.items()))
        return AppRoles(name, app)
    return AppRoles(None, None)


def resolve(params: Mapping[str, str], roles: AppRoles, service: str) -> dict[str, str]:
    """Params with every ``@role`` replaced by the event's app's entry; ActionRefused names the missing key."""
    out: dict[str, str] = {}
    for key, value in params.items():
        role = role_of(value)
        out[key] = value if role is None else roles.value(role, service)
    return out


__all__ = ["ROLES", "AppRoles", "check_role", "resolve", "role_of", "roles_for", "with_app_sections"]
