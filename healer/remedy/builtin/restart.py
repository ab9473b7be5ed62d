"""``restart``: restart an allowlisted service and prove it is serving again.

Only units listed in ``actions.restart.units`` can be restarted; the ``service``
param (often from the log line) is only a key into that list, and the name
handed to systemctl/supervisorctl comes from the config.

Supervisor is driven through ``supervisorctl`` rather than supervisord's
XML-RPC API: it keeps every process start in the one audited ``Runner`` (with
its timeout and bounded output), it reads the socket and credentials from the
same ``supervisord.conf`` an operator uses, so healer needs no copy of them,
and ``supervisorctl status NAME`` exits 0 only when the program is RUNNING,
which is all the verify step needs.

"Up" is not "serving": verify also waits for an optional TCP port and/or
HTTP URL to answer. A restart cannot be undone, so this action is not
reversible.
"""

from __future__ import annotations

import http.client
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import structlog

from healer.core.enums import AuditKind
from healer.core.errors import ActionError, ActionRefused, ParamError
from healer.remedy.base import Action, ActionContext, VerifyResult, register, str_list
from healer.remedy.common import mapping, positive_number, text

log = structlog.get_logger("healer.remedy.builtin.restart")

MANAGERS = ("systemd", "supervisor", "command")
UNIT_NAME = re.compile(r"^[A-Za-z0-9@_.:\\-]+$", re.ASCII)
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class UnitSpec:
    key: str
    manager: str
    unit: str  # the name the manager knows it by
    verify_tcp: tuple[str, int] | None
    verify_http: str | None
    timeout: float
    argv: tuple[str, ...] = ()
    status_argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestartSettings:
    units: Mapping[str, UnitSpec]
    systemctl: str
    supervisorctl: str
    supervisor_conf: str | None


def _tcp(raw: Any, where: str) -> tuple[str, int] | None:
    if raw is None:
        return None
    m = re.match(r"^\[?([^\[\]]+?)\]?:(\d{1,5})$", raw) if isinstance(raw, str) else None
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ParamError(f"{where}: expected 'host:port' like '127.0.0.1:6379', got {raw!r}")
    return m.group(1), int(m.group(2))


class RestartState(TypedDict):
    service: str
    manager: str
    unit: str
    argv: list[str]


@register
class RestartAction(Action[RestartSettings, RestartState]):
    name = "restart"
    reversible = False
    param_keys = frozenset({"service"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> RestartSettings:
        top = mapping(raw, where, ["manager", "units", "systemctl", "supervisorctl", "supervisor_conf"])
        manager = top.get("manager", "systemd")
        if manager not in MANAGERS:
            raise ParamError(f"{where}.manager: expected one of {list(MANAGERS)}, got {manager!r}")
        conf = top.get("supervisor_conf")
        if conf is not None:
            conf = text(conf, f"{where}.supervisor_conf")
            if not conf.startswith("/"):
                raise ParamError(f"{where}.supervisor_conf: must be an absolute path")
        units_raw = mapping(top.get("units"), f"{where}.units")
        if not units_raw:
            raise ParamError(f"{where}.units: list the units healer may restart, e.g. {{redis: {{}}}}")
        units: dict[str, UnitSpec] = {}
        for key, spec_raw in units_raw.items():
            here = f"{where}.units.{key}"
            spec = mapping(
                spec_raw or {},
                here,
                ["manager", "unit", "verify_tcp", "verify_http", "timeout", "argv", "status_argv"],
            )
            mgr = spec.get("manager", manager)
            if mgr not in MANAGERS:
                raise ParamError(f"{here}.manager: expected one of {list(MANAGERS)}, got {mgr!r}")
            unit = text(spec.get("unit"), f"{here}.unit", default=key)
            if not UNIT_NAME.match(unit) or unit.startswith("-"):
                raise ParamError(f"{here}.unit: {unit!r} is not a valid unit/program name")
            argv: list[str] = []
            status_argv: list[str] = []
            if mgr == "command":
                argv = str_list(spec.get("argv"), f"{here}.argv")
                status_argv = str_list(spec.get("status_argv", []), f"{here}.status_argv")
                if not argv:
                    raise ParamError(f"{here}.argv: the command manager needs an argv to run")
                for arg in argv + status_argv:
                    if "{" in arg or "}" in arg:
                        raise ParamError(f"{here}.argv: no placeholders; the argv is run exactly as written")
            elif "argv" in spec or "status_argv" in spec:
                raise ParamError(f"{here}.argv: only allowed with manager: command")
            if mgr == "supervisor" and conf is None:
                raise ParamError(f"{where}.supervisor_conf: needed for supervisor units (path to supervisord.conf)")
            http = spec.get("verify_http")
            if http is not None:
                http = text(http, f"{here}.verify_http")
                if not http.startswith(("http://", "https://")):
                    raise ParamError(f"{here}.verify_http: expected an http(s):// URL")
            units[key] = UnitSpec(
                key,
                mgr,
                unit,
                _tcp(spec.get("verify_tcp"), f"{here}.verify_tcp"),
                http,
                positive_number(spec.get("timeout"), f"{here}.timeout", 30.0),
                tuple(argv),
                tuple(status_argv),
            )
        return RestartSettings(
            units,
            text(top.get("systemctl"), f"{where}.systemctl", default="systemctl"),
            text(top.get("supervisorctl"), f"{where}.supervisorctl", default="supervisorctl"),
            conf,
        )

    # ------------------------------------------------------------ lookups

    @staticmethod
    def _unit(ctx: ActionContext, settings: RestartSettings) -> UnitSpec:
        key = ctx.params.get("service", "")
        if key not in settings.units:
            raise ActionRefused(f"service {key!r} is not in actions.restart.units; it will not be restarted")
        return settings.units[key]

    def _target(self, ctx: ActionContext, settings: RestartSettings) -> str:
        spec = self._unit(ctx, settings)
        return f"unit:{spec.manager}:{spec.unit}"

    @staticmethod
    def _restart_argv(s: RestartSettings, u: UnitSpec) -> list[str]:
        if u.manager == "systemd":
            return [s.systemctl, "restart", u.unit]
        if u.manager == "supervisor":
            assert s.supervisor_conf is not None
            return [s.supervisorctl, "-c", s.supervisor_conf, "restart", u.unit]
        return list(u.argv)

    @staticmethod
    def _status_argv(s: RestartSettings, u: UnitSpec) -> list[str] | None:
        if u.manager == "systemd":
            return [s.systemctl, "is-active", u.unit]
        if u.manager == "supervisor":
            assert s.supervisor_conf is not None
            return [s.supervisorctl, "-c", s.supervisor_conf, "status", u.unit]
        return list(u.status_argv) or None

    def _check(self, ctx: ActionContext, settings: RestartSettings) -> None:
        self._unit(ctx, settings)

    def _apply(self, ctx: ActionContext, settings: RestartSettings) -> RestartState:
        unit = self._unit(ctx, settings)
        argv = self._restart_argv(settings, unit)
        state = RestartState(service=unit.key, manager=unit.manager, unit=unit.unit, argv=argv)
        ctx.checkpoint(state)
        res = ctx.run(argv, step="restart", timeout=unit.timeout + 30)
        if not res.ok:
            # supervisorctl exits non-zero when the stop half finds the program
            # already dead; the start half may still have worked, so ask.
            if unit.manager == "supervisor" and self._status_ok(ctx, settings, unit):
                log.info("restart_nonzero_but_running", unit=unit.unit, rc=res.returncode)
            else:
                raise ActionError(
                    f"restart {unit.unit} ({unit.manager}) failed rc {res.returncode}: {res.summary(300)}"
                )
        log.info("restarted", unit=unit.unit, manager=unit.manager)
        return state

    def _status_ok(self, ctx: ActionContext, settings: RestartSettings, unit: UnitSpec) -> bool:
        argv = self._status_argv(settings, unit)
        if argv is None:
            return True
        return ctx.run(argv, step="status", timeout=min(unit.timeout, 30.0)).ok

    def _verify(self, ctx: ActionContext, settings: RestartSettings, state: RestartState) -> VerifyResult:
        """Poll until the manager says running and the port/URL answer, or the unit's timeout passes.

        The deadline uses ``ctx.clock`` but the loop is also bounded by a
        count, so a frozen test clock cannot spin it forever.
        """
        unit = self._unit(ctx, settings)
        deadline = ctx.clock.monotonic() + unit.timeout
        rounds = max(1, int(unit.timeout / POLL_INTERVAL))
        last = "not checked"
        for i in range(rounds):
            ok, last = self._probe(ctx, settings, unit)
            if ok:
                return VerifyResult(True, last)
            if i + 1 == rounds or ctx.clock.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        return VerifyResult(False, f"{unit.unit} not healthy after {unit.timeout:g}s: {last}")

    def _probe(self, ctx: ActionContext, settings: RestartSettings, unit: UnitSpec) -> tuple[bool, str]:
        if not self._status_ok(ctx, settings, unit):
            return False, f"{unit.manager} does not report {unit.unit} running"
        parts = [f"{unit.unit} running"]
        if unit.verify_tcp is not None:
            host, port = unit.verify_tcp
            try:
                with socket.create_connection((host, port), timeout=min(2.0, unit.timeout)):
                    pass
            except OSError as exc:
                return False, f"tcp {host}:{port}: {exc}"
            parts.append(f"tcp {host}:{port} open")
        if unit.verify_http is not None:
            try:
                with urllib.request.urlopen(unit.verify_http, timeout=min(5.0, unit.timeout)) as resp:  # noqa: S310 - URL from config, http(s) checked at load
                    code = resp.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            except (OSError, http.client.HTTPException) as exc:
                return False, f"http {unit.verify_http}: {exc}"
            if code >= 400:
                return False, f"http {unit.verify_http}: status {code}"
            parts.append(f"http {code}")
        ctx.audit(AuditKind.RESTART_VERIFY, {"unit": unit.unit, "result": ", ".join(parts)})
        return True, ", ".join(parts)
