"""Preconditions and reviews: the host-reading gate between a decided fix and its first step.

The decision policy (``policy.py``) is pure over a snapshot of the store;
what needs the host (is the checkout on ``main``? is a deploy lock there?
what would this pull change?) is probed here, in the fix worker, just
before the chain would start. ``after_checks`` is the pure ruling over
what the probes found; :class:`Prechecks` runs the probes, records every
verdict (an audit entry with the decision, which ``healer explain``
shows) and carries the ruling out:

- a failed ``critical`` check blocks the fix: the decided fix is marked
  blocked (it uses no budget), a ``skip (precondition)`` decision says
  why, automatic matches wait on it, and :meth:`Prechecks.cleared` /
  :meth:`Prechecks.retry` decide it again (trigger ``retry``, through every
  guardrail) once its checks pass, for ``preconditions.retry_for``;
- a failed ``warning`` check, or a step whose ``review`` names a reason
  (``git_sync`` touching a protected path), turns the fix into a question:
  an ``ask`` decision whose approval message lists the reasons and the
  verdicts. A fix a human approved is not asked again for what that
  approval listed (a critical check still blocks it); a warning or a
  protected path it did not list asks again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from healer.core.enums import AuditKind, CheckSeverity, Reason, Trigger, Verdict
from healer.core.jobs import FixJob, IngestResult
from healer.core.notices import Notice, NoticeKind
from healer.engine.decisions import Decider
from healer.engine.policy import Ruling
from healer.engine.wiring import Wiring
from healer.remedy.apps import roles_for
from healer.remedy.base import Action, ActionContext
from healer.remedy.preconditions import CheckVerdict, ProbeEnv, probe
from healer.rules.patterns import Pattern
from healer.settings.preconditions import CheckBase
from healer.settings.schema import Settings
from healer.store.db import BlockedFix

log = structlog.get_logger("healer.engine.preconditions")

AuditFn = Callable[[AuditKind, Mapping[str, object]], None]
Plan = Sequence[tuple[Action, ActionContext]]


@dataclass(frozen=True, slots=True)
class Findings:
    verdicts: tuple[CheckVerdict, ...] = ()
    reviews: tuple[str, ...] = ()


def checks_for(pattern: Pattern, settings: Settings) -> tuple[CheckBase, ...]:
    """The config's defaults, each action's checks (in chain order), then the pattern's own."""
    return settings.preconditions.for_actions(s.action for s in pattern.steps) + pattern.preconditions


def after_checks(
    verdicts: Sequence[CheckVerdict], reviews: Sequence[str], trigger: Trigger, approved: str = ""
) -> Ruling | None:
    """What the probes mean for the fix: SKIP (blocked), ASK (with why), or None to run it.

    Critical failures block whatever the trigger. ``approved`` is what the
    approval a human gave showed (for trigger ``approved``): a warning or
    review it listed does not ask again; one it did not list (the pattern
    asked before anything was probed, or the upstream moved on since) does.
    """
    failed = [v for v in verdicts if not v.ok]
    critical = [v for v in failed if v.severity is CheckSeverity.CRITICAL]
    if critical:
        return Ruling(Verdict.SKIP, Reason.PRECONDITION, "blocked until it clears: " + "; ".join(_short(critical)))
    if trigger is Trigger.APPROVED:
        reviews = [r for r in reviews if r not in approved]
        failed = [v for v in failed if f"FAILED {v.label} [" not in approved]
    if reviews:
        warnings = f"; precondition warnings: {'; '.join(_short(failed))}" if failed else ""
        return Ruling(Verdict.ASK, Reason.PROTECTED_PATHS, "; ".join(reviews) + warnings)
    if failed:
        return Ruling(Verdict.ASK, Reason.PRECONDITION, "precondition warnings: " + "; ".join(_short(failed)))
    return None


def approval_text(found: Findings) -> str:
    """Why the fix asks, one reason a line, then every verdict: what the approval message adds."""
    warned = [v.label for v in found.verdicts if not v.ok]
    lines = [*found.reviews, *([f"precondition warnings: {', '.join(warned)}"] if warned else [])]
    if found.verdicts:
        lines += ["Preconditions:", *(f"  {v.line()}" for v in found.verdicts)]
    return "\n".join(lines)


def _short(verdicts: Sequence[CheckVerdict]) -> list[str]:
    return [f"{v.label}: {v.detail}" for v in verdicts]


class Prechecks:
    def __init__(self, w: Wiring, decider: Decider) -> None:
        self.w = w
        self.decider = decider

    # -- probing ---------------------------------------------------------------------------
    def _env(self, pattern: Pattern, settings: Settings, incident_id: int, service: str, audit: AuditFn) -> ProbeEnv:
        return ProbeEnv(
            actions=settings.actions,
            roles=roles_for(settings.apps, service),
            service=service,
            pattern_id=pattern.id,
            incident_id=incident_id,
            runner=self.w.runner,
            clock=self.w.clock,
            audit=audit,
        )

    def probe(
        self, pattern: Pattern, settings: Settings, incident_id: int, service: str, audit: AuditFn
    ) -> tuple[CheckVerdict, ...]:
        env = self._env(pattern, settings, incident_id, service, audit)
        return tuple(probe(c, env) for c in checks_for(pattern, settings))

    @staticmethod
    def reviews(plan: Plan) -> tuple[str, ...]:
        out = []
        for action, ctx in plan:
            try:
                why = action.review(ctx)
            except Exception as exc:  # a review that cannot be made asks; it never waves a fix through
                why = f"{action.name}: could not review the change ({type(exc).__name__}: {exc})"
            if why:
                out.append(why)
        return tuple(out)

    # -- the gate in front of a fix -----------------------------------------------------------
    def allow(self, job: FixJob, pattern: Pattern, settings: Settings, plan: Plan, audit: AuditFn) -> bool:
        """True when the chain may start; otherwise the fix was blocked or turned into a question."""
        verdicts = self.probe(pattern, settings, job.incident_id, job.service, audit)
        reviews = self.reviews(plan)
        if not verdicts and not reviews:
            return True
        self._record(job, Findings(verdicts, reviews))
        approved = self.w.store.approved_text(job.incident_id) if job.trigger is Trigger.APPROVED else ""
        ruling = after_checks(verdicts, reviews, job.trigger, approved)
        if ruling is None:
            return True
        self._stop(job, pattern, ruling, Findings(verdicts, reviews))
        return False

    def _record(self, job: FixJob, found: Findings) -> None:
        data = {
            "incident": job.incident_id,
            "decision": job.decision.id,
            "trigger": job.trigger.value,
            "verdicts": [v.as_json() for v in found.verdicts],
            "reviews": list(found.reviews),
        }
        self.w.store.audit(AuditKind.PRECONDITIONS, "engine", data, self.w.clock.now())
        log.info("preconditions", incident=job.incident_id, verdicts=[v.line() for v in found.verdicts])

    def _stop(self, job: FixJob, pattern: Pattern, ruling: Ruling, found: Findings) -> None:
        w, store = self.w, self.w.store
        now = w.clock.now()
        notices: list[Notice] = []
        with store.tx() as db:
            inc = store.incident_in(db, job.incident_id)
            store.mark_blocked(db, job.decision.id, f"not started: {ruling.reason.value}")
            decision, _ = self.decider.record(db, inc, pattern, ruling, now, job.trigger, collapse=False)
            if ruling.verdict is Verdict.ASK:
                why = approval_text(found)
                notices.append(self.decider.ask(db, inc, pattern, decision, job.groups, job.service, why))
            else:
                text = f"fix for incident #{inc.id} ({pattern.id}) waits: {ruling.detail}; retried when it clears"
                notices.append(Notice(NoticeKind.FIX_RESULT, pattern.severity, text, incident=inc, decision=decision))
        w.emit(notices)

    # -- retrying blocked fixes ---------------------------------------------------------------
    def cleared(self) -> list[BlockedFix]:
        """Blocked fixes whose critical checks pass now (probes run here: call it off the ingest thread)."""
        w = self.w
        settings = w.settings
        now = w.clock.now()
        out = []
        for b in w.store.blocked_fixes(now - settings.preconditions.retry_for):
            pattern = w.by_id.get(b.decision.pattern_id)
            inc = w.store.incident(b.decision.incident_id)
            if pattern is None or inc is None:
                continue
            audit: AuditFn = lambda kind, data: w.store.audit(kind, "engine", data, w.clock.now())  # noqa: E731
            verdicts = self.probe(pattern, settings, inc.id, inc.service, audit)
            if not any(not v.ok and v.severity is CheckSeverity.CRITICAL for v in verdicts):
                out.append(b)
        return out

    def retry(self, cleared: Sequence[BlockedFix]) -> IngestResult:
        """Decide each cleared fix again, through every guardrail; the result's jobs are the fixes to run."""
        w = self.w
        store = w.store
        now = w.clock.now()
        result = IngestResult()
        with store.tx() as db:
            for b in cleared:
                inc = store.incident_in(db, b.decision.incident_id)
                pattern = w.by_id.get(b.decision.pattern_id)
                last = store.last_decision(inc.id)
                if pattern is None or last is None or last.id != b.decision.id:
                    continue  # decided again meanwhile (an approval, "fix errors"): that decision stands
                groups = store.incident_facts(db, inc.id).groups
                self.decider.decide_and_record(db, inc, pattern, groups, inc.service, now, Trigger.RETRY, result)
        w.emit(result.notices)
        return result
