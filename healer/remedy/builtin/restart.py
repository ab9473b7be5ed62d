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
HTTP URL to answer, and a supervisord program must still be the same
process (pid) ``stay_up`` seconds later: supervisord restarts a program
that exits, so a crash loop reads RUNNING at every look. A restart cannot be
undone, so this action is not reversible.

The confirmation probe asks the same questions once, before a restart: not
running, or its ``verify_tcp`` port closed, confirms the fault; running with
the port open refutes it (the client is misconfigured, not the service).
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
from typing import Annotated, Any, Literal, TypedDict

import structlog
from pydantic import AfterValidator, BeforeValidator, ValidationInfo, field_validator, model_validator

from healer.core.enums import AuditKind, Confirm
from healer.core.errors import ActionError, ActionRefused
from healer.remedy.base import NOT_HELD, Action, ActionContext, Confirmation, VerifyResult, probe_timeout, register
from healer.remedy.common import screen_name
from healer.settings.apps import host_port, same_place
from healer.settings.fields import ActionModel, Duration, Items, Model, Name, Text, Timeout, name_entries, required
from healer.settings.validation import Problem, validate_model

log = structlog.get_logger("healer.remedy.builtin.restart")

UNIT_NAME = re.compile(r"^[A-Za-z0-9@_.:\\-]+$", re.ASCII)
SUPERVISOR_PID = re.compile(r"\bpid (\d+)")
POLL_INTERVAL = 0.2


Manager = Literal["systemd", "supervisor", "command"]
# How a confirmation probe says the manager reported the unit up.
RUNNING_WORD: Mapping[str, str] = {"systemd": "active", "supervisor": "RUNNING", "command": "up (status_argv exits 0)"}


def _tcp(raw: Any) -> tuple[str, int] | None:
    return None if raw is None else host_port(raw)


def _unit_name(raw: str) -> str:
    if not UNIT_NAME.match(raw) or raw.startswith("-"):
        raise ValueError(f"{raw!r} is not a valid unit/program name")
    return raw


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http(s):// URL")
    return raw


def _absolute(raw: str) -> str:
    if not raw.startswith("/"):
        raise ValueError("must be an absolute path")
    return raw


class UnitSpec(Model):
    key: str = ""  # the name under units; set from the mapping key, never written in the file
    manager: Manager = "systemd"
    unit: Annotated[Name, AfterValidator(_unit_name)]  # the name the manager knows it by
    verify_tcp: Annotated[tuple[str, int] | None, BeforeValidator(_tcp)] = None
    verify_http: Annotated[Name, AfterValidator(_http_url)] | None = None
    timeout: Timeout = 30.0
    # Once it looks healthy it must still be after this long: a unit in a crash loop is up for a moment.
    stay_up: Duration = 3.0
    argv: Items[Text] = ()
    status_argv: Items[Text] = ()

    @model_validator(mode="after")
    def _argv_only_for_command(self) -> UnitSpec:
        if self.manager != "command":
            if self.argv or self.status_argv:
                raise Problem("argv", "only allowed with manager: command")
            return self
        if not self.argv:
            raise Problem("argv", "the command manager needs an argv to run")
        if any("{" in arg or "}" in arg for arg in self.argv + self.status_argv):
            raise Problem("argv", "no placeholders; the argv is run exactly as written")
        return self


class RestartSettings(ActionModel):
    manager: Manager = "systemd"  # the default for units that name none
    units: Annotated[Mapping[str, UnitSpec], required("list the units healer may restart, e.g. {redis: {}}")]
    systemctl: Name = "systemctl"
    supervisorctl: Name = "supervisorctl"
    supervisor_conf: Annotated[Name, AfterValidator(_absolute)] | None = None

    @field_validator("units", mode="before")
    @classmethod
    def _named_units(cls, raw: Any, info: ValidationInfo) -> Any:
        """Each unit learns its key, its name (default: the key) and the default manager."""
        manager = info.data.get("manager", "systemd")
        return name_entries(raw, "units", lambda key: {"unit": key, "manager": manager})

    @model_validator(mode="after")
    def _complete(self) -> RestartSettings:
        if self.supervisor_conf is None and any(u.manager == "supervisor" for u in self.units.values()):
            raise Problem("supervisor_conf", "needed for supervisor units (path to supervisord.conf)")
        return self


class RestartState(TypedDict):
    service: str
    manager: str
    unit: str
    argv: list[str]


@register
class RestartAction(Action[RestartSettings, RestartState]):
    name = "restart"
    reversible = False
    default_grace = 10.0  # clients time out and log against the old process for a while
    # ``address``: where the line says the client tried to connect ("{host}:{port}" from the log);
    # ``expect``: where this service listens when the unit has no verify_tcp (a role: "@redis.address").
    param_keys = frozenset({"service", "address", "expect"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> RestartSettings:
        return validate_model(RestartSettings, raw, where)

    # ------------------------------------------------------------ lookups

    @staticmethod
    def _unit(ctx: ActionContext, settings: RestartSettings) -> UnitSpec:
        key = ctx.params.get("service", "")
        if key not in settings.units:
            screen_name(key, "actions.restart.units", "service")
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

    @staticmethod
    def _local(ctx: ActionContext, unit: UnitSpec) -> None:
        """Refuse when the line's address is not where this unit listens: another host's or port's service."""
        seen = ctx.params.get("address")
        if not seen:
            return
        if unit.verify_tcp is not None:
            host, port = unit.verify_tcp
            expect = f"{host}:{port}"
        else:
            expect = ctx.params.get("expect", "")
        if expect and not same_place(seen, expect):
            raise ActionRefused(
                f"the line names {seen}, but {unit.unit} listens on {expect}: not this host's service; notify only"
            )

    def _check(self, ctx: ActionContext, settings: RestartSettings) -> None:
        self._local(ctx, self._unit(ctx, settings))

    def admits(self, ctx: ActionContext) -> None:
        self._unit(ctx, self.configured(ctx))

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

    def _status(self, ctx: ActionContext, settings: RestartSettings, unit: UnitSpec, timeout: float) -> Status:
        """What the manager says; ``running`` is None when there is nothing to ask (command without status_argv)."""
        argv = self._status_argv(settings, unit)
        if argv is None:
            return Status(None, None, "no status_argv", timed_out=False)
        res = ctx.run(argv, step="status", timeout=timeout)
        # supervisorctl prints "NAME RUNNING pid 123, uptime ..."; a new pid means supervisord restarted it.
        m = SUPERVISOR_PID.search(res.stdout) if unit.manager == "supervisor" and res.ok else None
        said = " ".join(res.summary(200).split())  # supervisorctl pads its columns
        return Status(res.ok, int(m.group(1)) if m else None, said, res.timed_out)

    def _status_ok(self, ctx: ActionContext, settings: RestartSettings, unit: UnitSpec) -> bool:
        return self._status(ctx, settings, unit, min(unit.timeout, 30.0)).running is not False

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
            ok, last, pid = self._probe(ctx, settings, unit)
            if ok:
                return self._stays_up(ctx, settings, unit, last, pid)
            if i + 1 == rounds or ctx.clock.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)
        return VerifyResult(False, f"{unit.unit} not healthy after {unit.timeout:g}s: {last}")

    def _stays_up(
        self, ctx: ActionContext, settings: RestartSettings, unit: UnitSpec, first: str, pid: int | None
    ) -> VerifyResult:
        """The positive probe's second half: healthy again ``stay_up`` seconds after it first was, as the same process.

        supervisord restarts a program that exits (autorestart), so a crash
        loop reads RUNNING at both looks; only the pid tells it was another process.
        """
        if unit.stay_up <= 0:
            return VerifyResult(True, first)
        time.sleep(unit.stay_up)
        ok, again, pid_after = self._probe(ctx, settings, unit)
        if not ok:
            return VerifyResult(
                False, f"{unit.unit} came up but was down again within {unit.stay_up:g}s: {again}; {NOT_HELD}"
            )
        if pid is not None and pid_after is not None and pid_after != pid:
            return VerifyResult(
                False,
                f"{unit.unit} was restarted by {unit.manager} within {unit.stay_up:g}s (pid {pid} -> {pid_after}):"
                f" it exits and is started again (a crash loop); {NOT_HELD}",
            )
        return VerifyResult(True, f"{again}; still up after {unit.stay_up:g}s")

    def _probe(self, ctx: ActionContext, settings: RestartSettings, unit: UnitSpec) -> tuple[bool, str, int | None]:
        """(healthy, what was seen, the pid the manager named)."""
        status = self._status(ctx, settings, unit, min(unit.timeout, 30.0))
        if status.running is False:
            return False, f"{unit.manager} does not report {unit.unit} running", None
        parts = [f"{unit.unit} running" + (f" (pid {status.pid})" if status.pid is not None else "")]
        if unit.verify_tcp is not None:
            host, port = unit.verify_tcp
            refused = _tcp_refused(host, port, min(2.0, unit.timeout))
            if refused is not None:
                return False, f"tcp {host}:{port}: {refused}", status.pid
            parts.append(f"tcp {host}:{port} open")
        if unit.verify_http is not None:
            try:
                with urllib.request.urlopen(unit.verify_http, timeout=min(5.0, unit.timeout)) as resp:  # noqa: S310 - URL from config, http(s) checked at load
                    code = resp.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            except (OSError, http.client.HTTPException) as exc:
                return False, f"http {unit.verify_http}: {exc}", status.pid
            if code >= 400:
                return False, f"http {unit.verify_http}: status {code}", status.pid
            parts.append(f"http {code}")
        ctx.audit(AuditKind.RESTART_VERIFY, {"unit": unit.unit, "result": ", ".join(parts)})
        return True, ", ".join(parts), status.pid

    def _confirm(self, ctx: ActionContext, settings: RestartSettings) -> Confirmation:
        """CONFIRMED when the manager says it is not running or its port is closed; REFUTED when it serves."""
        unit = self._unit(ctx, settings)
        timeout = probe_timeout(unit.timeout)
        seen = []
        status = self._status(ctx, settings, unit, timeout)
        if status.timed_out:
            return Confirmation(Confirm.UNKNOWN, f"{unit.manager} did not answer about {unit.unit} in {timeout:g}s")
        if status.running is False:
            return Confirmation(Confirm.CONFIRMED, f"{unit.unit} is not running ({unit.manager}: {status.said})")
        if status.running:
            seen.append(f"{unit.unit} is {RUNNING_WORD[unit.manager]}")
        if unit.verify_tcp is not None:
            host, port = unit.verify_tcp
            refused = _tcp_refused(host, port, timeout)
            if refused is not None:
                return Confirmation(Confirm.CONFIRMED, f"{host}:{port} does not accept connections ({refused})")
            seen.append(f"{host}:{port} accepts connections")
        if not seen:
            return Confirmation(Confirm.UNKNOWN, f"{unit.key} has neither status_argv nor verify_tcp to look at")
        return Confirmation(Confirm.REFUTED, " and ".join(seen) + ": the client's configuration is at fault")


@dataclass(frozen=True, slots=True)
class Status:
    running: bool | None
    pid: int | None
    said: str
    timed_out: bool


def _tcp_refused(host: str, port: int, timeout: float) -> str | None:
    """Why ``host:port`` does not accept a connection, or None when it does."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc)
