"""Preconditions: named, typed checks of the host that must hold before a fix runs.

A check is a mapping with ``check: <kind>`` and that kind's keys, plus
``severity`` (``critical``, the default, blocks the fix until it clears;
``warning`` turns an automatic fix into a question that says why) and an
optional ``name`` shown in messages. They are listed in the config
(``preconditions.defaults`` before every fix, ``preconditions.actions.<action>``
before every fix whose chain uses that action) and in a pattern
(``preconditions:``). The probes that read the host are in
:mod:`healer.remedy.preconditions`; this module only says what a valid
check looks like, so a typo is an error at load, naming the key.

No check takes a value from a log line: every path, unit and command is
written in the config or a pattern file, and a service or command is named
by its key in an allowlist the actions already have.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, model_validator

from healer.core.enums import CheckSeverity
from healer.settings.fields import AbsPath, Duration, Items, Model, Name, Number, Text
from healer.settings.types import ByteSize
from healer.settings.validation import Problem, SettingsInvalid, first_problem


class CheckBase(Model):
    name: Text = ""
    severity: CheckSeverity = CheckSeverity.CRITICAL

    @property
    def label(self) -> str:
        """How messages name the check: its ``name``, or the kind and its main argument."""
        return self.name or f"{self.kind}({self.argument})"

    @property
    def kind(self) -> str:
        return str(getattr(self, "check", type(self).__name__))

    @property
    def argument(self) -> str:
        return ""


class GitBranchIs(CheckBase):
    """The checkout is on ``branch``. ``repo``: an ``actions.git_sync.repos`` key, ``@checkout`` or a path."""

    check: Literal["git_branch_is"]
    repo: Name
    branch: Name

    @property
    def argument(self) -> str:
        return f"{self.repo}, {self.branch}"


class GitCleanExcept(CheckBase):
    """No local change (tracked or untracked) outside the ``paths`` globs."""

    check: Literal["git_clean_except"]
    repo: Name
    paths: Items[Name] = ()

    @property
    def argument(self) -> str:
        return self.repo


class NoFile(CheckBase):
    """A lock file (deploy in progress, maintenance) is absent."""

    check: Literal["no_file"]
    path: AbsPath

    @property
    def argument(self) -> str:
        return str(self.path)


def _crontab(raw: str) -> str:
    try:
        CronTrigger.from_crontab(raw, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a 5-field crontab line like '0 2 * * sun': {exc}") from None
    return raw


class MaintenanceWindow(CheckBase):
    """Fails inside a window that opens at each ``cron`` time and lasts ``duration``."""

    check: Literal["maintenance_window"]
    cron: Annotated[Name, AfterValidator(_crontab)]
    duration: Annotated[Duration, Field(gt=0)]
    timezone: Name = "UTC"

    @model_validator(mode="after")
    def _known_zone(self) -> MaintenanceWindow:
        try:
            CronTrigger.from_crontab(self.cron, timezone=self.timezone)
        except Exception as exc:  # zoneinfo raises its own error types for an unknown zone
            raise Problem("timezone", f"unknown time zone {self.timezone!r} ({type(exc).__name__})") from None
        return self

    @property
    def argument(self) -> str:
        return f"{self.cron} for {self.duration:g}s"


class MinFree(CheckBase):
    """At least ``bytes`` free and/or ``inodes`` free on the filesystem of ``path``."""

    check: Literal["min_free"]
    path: AbsPath
    bytes: ByteSize | None = None
    inodes: Annotated[int, Field(strict=True, ge=0)] | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> MinFree:
        if self.bytes is None and self.inodes is None:
            raise Problem("bytes", "give bytes (e.g. '2G') and/or inodes (a count) to keep free")
        return self

    @property
    def argument(self) -> str:
        return str(self.path)


class MaxLoad(CheckBase):
    """The load average over ``minutes`` (1, 5 or 15) is below ``below``."""

    check: Literal["max_load"]
    below: Annotated[Number, Field(ge=0)]
    minutes: Literal[1, 5, 15] = 5

    @property
    def argument(self) -> str:
        return f"< {self.below:g}"


class ServiceState(CheckBase):
    """A unit is active (or inactive). ``service``: an ``actions.restart.units`` key, or a role like ``@redis``."""

    check: Literal["service_active", "service_inactive"]
    service: Name

    @property
    def argument(self) -> str:
        return self.service


class CommandOk(CheckBase):
    """An allowlisted command (a key of ``actions.command.commands``) exits 0 within its timeout."""

    check: Literal["command_ok"]
    command: Name

    @property
    def argument(self) -> str:
        return self.command


Check = Annotated[
    GitBranchIs | GitCleanExcept | NoFile | MaintenanceWindow | MinFree | MaxLoad | ServiceState | CommandOk,
    Field(discriminator="check"),
]
CHECK_KINDS = (
    "git_branch_is",
    "git_clean_except",
    "no_file",
    "maintenance_window",
    "min_free",
    "max_load",
    "service_active",
    "service_inactive",
    "command_ok",
)


class PreconditionsSettings(Model):
    """The ``preconditions:`` section: what is checked before fixes, and how blocked fixes are retried."""

    # A fix a critical check blocked is decided again once every check passes, probed this often ...
    retry_every: Annotated[Duration, Field(ge=1)] = 60.0
    # ... for this long after it was first blocked; after that the next match starts over.
    retry_for: Duration = 21600.0
    defaults: Items[Check] = ()
    actions: Mapping[str, Items[Check]] = Field(default_factory=dict)

    def for_actions(self, names: Any) -> tuple[CheckBase, ...]:
        """The defaults, then each named action's checks (an action used twice in a chain counts once)."""
        out: list[CheckBase] = list(self.defaults)
        for name in dict.fromkeys(names):
            out.extend(self.actions.get(name, ()))
        return tuple(out)


_TAG_IN_KEY = re.compile(r"(\[\d+\])\.(?:" + "|".join(CHECK_KINDS) + r")\b")


class _Checks(Model):
    preconditions: Items[Check] = ()


_ADAPTER: TypeAdapter[_Checks] = TypeAdapter(_Checks)


def parse_checks(raw: Any) -> tuple[CheckBase, ...]:
    """A pattern's ``preconditions:`` list; ValueError naming ``preconditions[i].key`` otherwise."""
    if raw is None:
        return ()
    try:
        parsed = _ADAPTER.validate_python({"preconditions": raw})
    except ValidationError as exc:
        bad: SettingsInvalid = first_problem(exc, _Checks, "")
        key = _TAG_IN_KEY.sub(r"\1", bad.key)  # pydantic puts the union's tag in the location
        if "does not match any of the expected tags" in bad.problem or "Unable to extract tag" in bad.problem:
            raise ValueError(f"'{key}': the check must be one of {', '.join(CHECK_KINDS)}") from None
        raise ValueError(f"'{key}': {bad.problem}" + (f" ({bad.fix})" if bad.fix else "")) from None
    return tuple(parsed.preconditions)


__all__ = [
    "CHECK_KINDS",
    "Check",
    "CheckBase",
    "CommandOk",
    "GitBranchIs",
    "GitCleanExcept",
    "MaintenanceWindow",
    "MaxLoad",
    "MinFree",
    "NoFile",
    "PreconditionsSettings",
    "ServiceState",
    "parse_checks",
]
