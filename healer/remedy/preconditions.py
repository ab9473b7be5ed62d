"""The probes behind each precondition kind (``healer.settings.preconditions``): read the host, say why.

Every process goes through the one ``Runner`` (``ActionContext.run``: the
allowlisted environment, a timeout, an audit record); git through the
hardened ``Git`` of ``git_sync`` (no hooks, no fsmonitor). A probe never
raises: a check that cannot be evaluated (a missing allowlist entry, git
failing, a path that cannot be read) is a failed check whose detail says
why, so a broken probe blocks or asks rather than waving a fix through.

Services, repositories and commands are named by their allowlist keys
(``actions.restart.units``, ``actions.git_sync.repos``,
``actions.command.commands``) or by an app role such as ``@redis``; the
argv and unit names come from those entries, never from a log line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from healer.core.clock import Clock, SystemClock
from healer.core.enums import AuditKind, CheckSeverity
from healer.core.errors import HealerError
from healer.core.proc import Runner
from healer.remedy.apps import AppRoles, role_of
from healer.remedy.base import ActionContext, render
from healer.remedy.builtin.command import CommandSettings
from healer.remedy.builtin.git_sync import Git, GitSyncSettings
from healer.remedy.builtin.restart import RestartSettings
from healer.remedy.paths import PathSet
from healer.settings.preconditions import (
    CheckBase,
    CommandOk,
    GitBranchIs,
    GitCleanExcept,
    MaintenanceWindow,
    MaxLoad,
    MinFree,
    NoFile,
    ServiceState,
)
from healer.settings.types import format_size

GIT_TIMEOUT = 30.0
SERVICE_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class CheckVerdict:
    """One check's result as recorded with the decision and shown to a human."""

    label: str
    severity: CheckSeverity
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAILED'} {self.label} [{self.severity.value}]: {self.detail}"

    def as_json(self) -> dict[str, object]:
        return {"label": self.label, "severity": self.severity.value, "ok": self.ok, "detail": self.detail}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CheckVerdict:
        return cls(str(raw["label"]), CheckSeverity(raw["severity"]), bool(raw["ok"]), str(raw["detail"]))


def _noop_audit(kind: AuditKind, data: Mapping[str, object]) -> None:
    return None


@dataclass(frozen=True)
class ProbeEnv:
    """What the probes of one fix read: the typed action sections, the event's app, the clock."""

    actions: Mapping[str, Any]
    roles: AppRoles
    service: str
    pattern_id: str
    incident_id: int
    runner: Runner = field(default_factory=Runner)
    clock: Clock = field(default_factory=SystemClock)
    audit: Callable[[AuditKind, Mapping[str, object]], None] = _noop_audit

    def ctx(self, settings: object = None) -> ActionContext:
        return ActionContext(
            incident_id=self.incident_id,
            attempt_id=0,
            pattern_id=self.pattern_id,
            params={},
            settings=settings,
            runner=self.runner,
            clock=self.clock,
            audit=self.audit,
        )

    def key(self, value: str) -> str:
        """An allowlist key, or the entry an app role (``@checkout``) names for the event's app."""
        role = role_of(value)
        return value if role is None else self.roles.value(role, self.service)


class CheckFailed(HealerError):
    """Why a check could not be evaluated; the verdict reports it as a failure."""


def probe(check: CheckBase, env: ProbeEnv) -> CheckVerdict:
    """Evaluate one check on the host now."""
    try:
        ok, detail = _PROBES[type(check)](check, env)
    except HealerError as exc:
        ok, detail = False, f"could not check: {exc}"
    except OSError as exc:
        ok, detail = False, f"could not check: {exc.strerror or exc}"
    return CheckVerdict(check.label, check.severity, ok, detail)


# -- git ------------------------------------------------------------------------------------


def _git(repo: str, env: ProbeEnv) -> Git:
    key = env.key(repo)
    if key.startswith("/"):
        path = key
    else:
        settings = env.actions.get("git_sync")
        repos = settings.repos if isinstance(settings, GitSyncSettings) else {}
        spec = repos.get(key)
        if spec is None:
            raise CheckFailed(f"repo {key!r} is not in actions.git_sync.repos; name a key there or an absolute path")
        path = str(spec.path)
    git = Git(env.ctx(), path, GIT_TIMEOUT)
    if git.git_dir() is None:
        raise CheckFailed(f"{path} is not a git checkout")
    return git


def _branch_is(check: GitBranchIs, env: ProbeEnv) -> tuple[bool, str]:
    branch = _git(check.repo, env).branch()
    if branch is None:
        return False, "HEAD is detached"
    if branch != check.branch:
        return False, f"on branch {branch!r}, expected {check.branch!r}"
    return True, f"on {branch!r}"


def _clean_except(check: GitCleanExcept, env: ProbeEnv) -> tuple[bool, str]:
    # -z and the raw output: "XY path" entries whose X may be a space (Git.out would strip the first one).
    res = _git(check.repo, env).run("status", "--porcelain", "-z", "--untracked-files=all", "--no-renames")
    if not res.ok:
        raise CheckFailed(f"git status exited {res.returncode}: {res.summary(200)}")
    changed = [entry[3:] for entry in res.stdout.split("\0") if len(entry) > 3]
    allowed = PathSet(check.paths)
    outside = [p for p in changed if not allowed.matches(p)]
    if outside:
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        return False, "local changes outside the allowed paths: " + ", ".join(outside[:5]) + more
    return True, f"{len(changed)} local change(s), all in allowed paths" if changed else "clean"


# -- files, disk, load, time ----------------------------------------------------------------


def _no_file(check: NoFile, env: ProbeEnv) -> tuple[bool, str]:
    if os.path.lexists(check.path):
        return False, f"{check.path} exists"
    return True, f"{check.path} is absent"


def _min_free(check: MinFree, env: ProbeEnv) -> tuple[bool, str]:
    st = os.statvfs(check.path)
    free, inodes = st.f_bavail * st.f_frsize, st.f_favail
    problems, facts = [], []
    if check.bytes is not None:
        facts.append(f"{format_size(free)} free")
        if free < check.bytes:
            problems.append(f"{format_size(free)} free, below {format_size(check.bytes)}")
    if check.inodes is not None:
        facts.append(f"{inodes} inodes free")
        if inodes < check.inodes:
            problems.append(f"{inodes} inodes free, below {check.inodes}")
    if problems:
        return False, f"{check.path}: " + "; ".join(problems)
    return True, f"{check.path}: " + ", ".join(facts)


def _max_load(check: MaxLoad, env: ProbeEnv) -> tuple[bool, str]:
    load = os.getloadavg()[{1: 0, 5: 1, 15: 2}[check.minutes]]
    text = f"{check.minutes}-minute load {load:.2f}"
    return (True, f"{text} < {check.below:g}") if load < check.below else (False, f"{text}, not below {check.below:g}")


def _stamp(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M %Z")


def _window(check: MaintenanceWindow, env: ProbeEnv) -> tuple[bool, str]:
    """Inside when the window's latest opening (the first cron time after now - duration) is not after now."""
    trigger = CronTrigger.from_crontab(check.cron, timezone=check.timezone)
    now = env.clock.now()
    start = datetime.fromtimestamp(now - check.duration, tz=UTC)
    opened = trigger.get_next_fire_time(None, start)
    if opened is not None and opened.timestamp() <= now:
        until = datetime.fromtimestamp(opened.timestamp() + check.duration, tz=opened.tzinfo)
        return False, f"inside the maintenance window ({_stamp(opened)} until {_stamp(until)})"
    nxt = opened if opened is not None else trigger.get_next_fire_time(None, datetime.fromtimestamp(now, tz=UTC))
    return True, "outside the maintenance window" + (f" (next opens {_stamp(nxt)})" if nxt is not None else "")


# -- services and commands ------------------------------------------------------------------


def _service(check: ServiceState, env: ProbeEnv) -> tuple[bool, str]:
    settings = env.actions.get("restart")
    key = env.key(check.service)
    spec = settings.units.get(key) if isinstance(settings, RestartSettings) else None
    if settings is None or spec is None:
        raise CheckFailed(f"service {key!r} is not in actions.restart.units (or the app's service block)")
    if spec.manager == "systemd":
        argv = [settings.systemctl, "is-active", "--quiet", spec.unit]
    elif spec.manager == "supervisor":
        argv = [settings.supervisorctl, "-c", str(settings.supervisor_conf), "status", spec.unit]
    elif spec.status_argv:
        argv = list(spec.status_argv)
    else:
        raise CheckFailed(f"actions.restart.units.{key} has no status_argv to tell its state")
    res = env.ctx().run(argv, step=f"precondition {check.kind}", timeout=min(spec.timeout, SERVICE_TIMEOUT))
    active = res.ok
    state = "active" if active else ("did not answer in time" if res.timed_out else "not active")
    wanted = check.kind == "service_active"
    return active == wanted, f"{spec.unit} ({spec.manager}) is {state}"


def _command(check: CommandOk, env: ProbeEnv) -> tuple[bool, str]:
    settings = env.actions.get("command")
    commands = settings.commands if isinstance(settings, CommandSettings) else {}
    spec = commands.get(check.command)
    if spec is None:
        raise CheckFailed(f"command {check.command!r} is not in actions.command.commands")
    values = {"pattern": env.pattern_id, "incident": str(env.incident_id)}
    argv = [render(a, values) for a in spec.argv]
    res = env.ctx().run(argv, step="precondition command_ok", timeout=spec.timeout)
    if res.ok:
        return True, f"{check.command} exited 0"
    why = f"timed out after {spec.timeout:g}s" if res.timed_out else f"exited {res.returncode}"
    out = res.summary(160)
    return False, f"{check.command} {why}" + (f": {out}" if out else "")


_PROBES: Mapping[type[CheckBase], Callable[[Any, ProbeEnv], tuple[bool, str]]] = {
    GitBranchIs: _branch_is,
    GitCleanExcept: _clean_except,
    NoFile: _no_file,
    MaintenanceWindow: _window,
    MinFree: _min_free,
    MaxLoad: _max_load,
    ServiceState: _service,
    CommandOk: _command,
}


__all__ = ["CheckVerdict", "ProbeEnv", "probe"]
