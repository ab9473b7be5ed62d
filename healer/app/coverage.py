"""Which patterns can act with this config, per app: the matrix ``healer check`` prints.

For every app block (or, without one, the config as it stands) and every
pattern with a remediation, each step's roles are resolved through the app
and its literal params are put to the action's own allowlist lookup
(:meth:`Action.admits`), which starts no process. A pattern that can never
act says why, naming the key to add. Only the user's own patterns fail
``healer check`` that way: a bundled pattern waits for the app block that
enables it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from healer.core.enums import Approval
from healer.core.errors import ActionRefused, HealerError
from healer.core.paths import bundled_patterns_dir
from healer.remedy.apps import AppRoles, resolve, roles_for
from healer.remedy.base import ActionContext, get_action, placeholders
from healer.rules.patterns import Pattern
from healer.settings.schema import Settings


class Reach(Enum):
    ACTS = "acts"  # runs unasked
    ASKS = "asks"  # runs once approved
    NOTIFY = "notify"  # can never run with this config


@dataclass(frozen=True)
class Cover:
    app: str  # "" without app blocks
    pattern: Pattern
    reach: Reach
    detail: str  # the target, or why it cannot act

    @property
    def bundled(self) -> bool:
        return self.pattern.file.startswith(str(bundled_patterns_dir()))


def _step_problem(settings: Settings, pattern: Pattern, roles: AppRoles, service: str) -> tuple[str, str]:
    """(problem, targets): problem is "" when every step names something allowlisted."""
    targets: list[str] = []
    for step in pattern.steps:
        try:
            params = resolve(step.params, roles, service)
        except ActionRefused as exc:
            return str(exc), ""
        action = get_action(step.action)()
        section = settings.actions.get(step.action)
        # restart's "address" (where the line says the client went) is checked when the fix runs;
        # it names no target, so the target is known here without it.
        params = {k: v for k, v in params.items() if not (k == "address" and placeholders(v))}
        ctx = ActionContext(incident_id=0, attempt_id=0, pattern_id=pattern.id, params=params, settings=section)
        try:
            if any(placeholders(v) for v in params.values()):
                action.configured(ctx)  # the target comes from the line: only the section can be checked
                targets.append(f"{step.action} (target from the line)")
            else:
                action.admits(ctx)
                targets.append(action.target(ctx))
        except HealerError as exc:
            return f"{step.action}: {exc}", ""
    return "", ", ".join(targets)


def coverage(settings: Settings, patterns: Sequence[Pattern]) -> list[Cover]:
    apps: Mapping[str, object] = settings.apps
    scopes = list(apps) or [""]
    out: list[Cover] = []
    for app in scopes:
        roles = roles_for(settings.apps, app) if app else AppRoles(None, None)
        service = app or "app"
        for p in patterns:
            if not p.steps or p.approval is Approval.NEVER:
                continue
            problem, targets = _step_problem(settings, p, roles, service)
            if problem:
                out.append(Cover(app, p, Reach.NOTIFY, problem))
            else:
                out.append(Cover(app, p, Reach.ACTS if p.approval is Approval.AUTO else Reach.ASKS, targets))
    return out


def never_acting(covers: Sequence[Cover]) -> list[Cover]:
    """The user's own patterns that cannot act for any app: a config or pattern mistake."""
    acting = {c.pattern.id for c in covers if c.reach is not Reach.NOTIFY}
    seen: set[str] = set()
    out: list[Cover] = []
    for c in covers:
        if c.reach is Reach.NOTIFY and not c.bundled and c.pattern.id not in acting and c.pattern.id not in seen:
            seen.add(c.pattern.id)
            out.append(c)
    return out


def coverage_text(covers: Sequence[Cover]) -> list[str]:
    """Per app and family: the best reach any of its patterns has, and the target or the missing key."""
    lines: list[str] = []
    by_app: dict[str, dict[str, list[Cover]]] = {}
    for c in covers:
        by_app.setdefault(c.app, {}).setdefault(c.pattern.family.value, []).append(c)
    rank = {Reach.ACTS: 0, Reach.ASKS: 1, Reach.NOTIFY: 2}
    for app, families in by_app.items():
        lines.append(f"coverage for app {app}:" if app else "coverage (no apps: section; the names under actions:)")
        for family in sorted(families):
            best = min(families[family], key=lambda c: rank[c.reach])
            lines.append(f"  {family:<16} {best.reach.value:<7} {best.detail}")
    return lines


__all__ = ["Cover", "Reach", "coverage", "coverage_text", "never_acting"]
