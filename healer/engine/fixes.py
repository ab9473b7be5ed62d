"""Run fixes and settle them: the chain, undo after a recurrence, the verify window, timed reverts, recovery.

Every rollback goes through the attempt's ``Reverter`` (``remedy/reverter.py``);
the chain itself runs in ``remedy/runner.py``. Each fix's log lines carry
``incident``, ``attempt`` and ``pattern``, bound once with structlog's
context variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import structlog
from structlog.contextvars import bound_contextvars

from healer.core.enums import AuditKind, IncidentStatus, Outcome, Reason, Severity, Trigger, Verdict
from healer.core.errors import ActionRefused, HealerError
from healer.core.jobs import FixJob, ProbeJob
from healer.core.notices import Notice, NoticeKind, Told
from healer.core.records import FixAttempt
from healer.engine import wording
from healer.engine.decisions import Decider
from healer.engine.evidence import security_detail
from healer.engine.policy import REHEARSED, Ruling
from healer.engine.preconditions import Prechecks
from healer.engine.wiring import Wiring
from healer.remedy.apps import resolve, roles_for
from healer.remedy.base import Action, ActionContext, get_action, render
from healer.remedy.reverter import Reverter
from healer.remedy.runner import run_chain
from healer.rules.patterns import Pattern
from healer.settings.schema import Settings
from healer.store.db import AttemptRecord

log = structlog.get_logger("healer.engine.fixes")

AuditFn = Callable[[AuditKind, Mapping[str, object]], None]


def _no_audit(kind: AuditKind, data: Mapping[str, object]) -> None:
    """Rebuilding a plan for its wording audits nothing: it runs nothing."""


class Fixer:
    def __init__(self, w: Wiring, decider: Decider) -> None:
        self.w = w
        self.decider = decider
        self.prechecks = Prechecks(w, decider)
        decider.cannot_run = self.cannot_run  # a question is asked only for a fix that can run here

    # -- running a chain ---------------------------------------------------------
    def run_fix(self, job: FixJob) -> FixAttempt | None:
        """Run a chain: check, apply, verify each step; on failure undo in reverse."""
        w = self.w
        settings = w.settings  # one snapshot for the whole chain, even across a reload
        pattern = w.by_id.get(job.pattern_id)
        if pattern is None:
            log.warning("fix_pattern_gone", pattern=job.pattern_id)
            return None
        if job.decision.reason in REHEARSED:
            # A dry run's decision never starts a fix, even if dry run was turned off since.
            self.rehearse(job, pattern, settings)
            return None
        now = w.clock.now()
        attempt_box: list[int] = []

        def audit(kind: AuditKind, data: Mapping[str, object]) -> None:
            w.store.audit(kind, "engine", {"attempt": attempt_box[0] if attempt_box else None, **data}, w.clock.now())

        reverter = Reverter()
        plan = self._plan(job, pattern, settings, reverter, audit)
        facts = wording.facts_of(settings.host, job.service, pattern.id, job.incident_id, plan)
        # The kill switch and dry run win even over a decision made (or approved) a moment ago.
        blocked = Reason.KILL_SWITCH if settings.kill_switch else Reason.DRY_RUN if settings.dry_run else None
        if blocked is not None:
            w.store.audit(AuditKind.FIX_BLOCKED, "engine", {"incident": job.incident_id, "reason": blocked.value}, now)
            key = "kill_switch" if blocked is Reason.KILL_SWITCH else "dry_run"
            why = f"{key} is on (HEALER_{key.upper()} or {key}: in the config)"
            text = wording.blocked(facts, why, f"not retried; turn {key} off, then send 'fix errors' to run it")
            w.emit([Notice(NoticeKind.FIX_RESULT, pattern.severity, text, outcome=Told.BLOCKED)])
            return None
        # The host-reading guardrails (preconditions, reviews such as protected paths), before anything is locked.
        if not self.prechecks.allow(job, pattern, settings, plan, audit):
            return None
        names = [a.name for a, _ in plan]
        try:
            targets = [a.target(c) for a, c in plan]
        except HealerError as exc:
            targets = [f"invalid:{exc}"]
        aid = w.store.start_attempt(job.incident_id, job.decision.id, names, targets, now, job.trigger)
        if aid is None:
            self._busy(job, pattern, facts, targets, now)
            return None
        attempt_box.append(aid)
        reverter.persist = lambda stack: w.store.checkpoint(aid, stack)
        with bound_contextvars(incident=job.incident_id, attempt=aid, pattern=pattern.id):
            return self._run(job, pattern, settings, plan, reverter, aid, names)

    def _busy(self, job: FixJob, pattern: Pattern, facts: wording.FixFacts, targets: list[str], now: float) -> None:
        """Another fix holds a target: this one waits (no budget used) and the retry job decides it again."""
        w = self.w
        w.store.mark_busy(job.decision.id, targets)
        w.store.audit(AuditKind.FIX_BUSY, "engine", {"incident": job.incident_id, "targets": targets}, now)
        every = w.settings.preconditions.retry_every
        why = f"target busy ({', '.join(targets)}): another fix holds it"
        with w.store.tx() as db:
            inc = w.store.incident_in(db, job.incident_id)
            ruling = Ruling(Verdict.SKIP, Reason.TARGET_BUSY, why)
            decision, _ = self.decider.record(db, inc, pattern, ruling, now, job.trigger, collapse=False)
        nxt = f"retried every {every:g}s once the target is free (preconditions.retry_every), through every guardrail"
        text = wording.blocked(facts, why, nxt)
        notice = Notice(
            NoticeKind.FIX_RESULT, pattern.severity, text, incident=inc, decision=decision, outcome=Told.BLOCKED
        )
        w.emit([notice])

    def rehearse(self, job: FixJob, pattern: Pattern, settings: Settings) -> None:
        """Dry run: each step's own ``check`` (allowlists, the unit or package named), as the fix would meet it.

        Nothing is applied, nothing locked, no attempt recorded. A refusal
        replaces the decision's "would run" with "would be refused" and why;
        every step is checked before any runs, where the real chain checks each
        just before it applies, so a check that depends on an earlier step's
        change may refuse here and not in the daemon.
        """
        w = self.w

        def audit(kind: AuditKind, data: Mapping[str, object]) -> None:
            w.store.audit(kind, "dry_run", {"decision": job.decision.id, **data}, w.clock.now())

        for i in range(len(pattern.steps)):
            action, ctx = self.step_context(job, pattern, settings, i, audit)
            try:
                action.check(ctx)
            except HealerError as exc:
                w.store.refuse_rehearsal(job.decision.id, f"would be refused: {action.name}: {exc}")
                return

    def _plan(
        self, job: FixJob, pattern: Pattern, settings: Settings, reverter: Reverter, audit: AuditFn
    ) -> list[tuple[Action, ActionContext]]:
        plan: list[tuple[Action, ActionContext]] = []
        for i, step in enumerate(pattern.steps):
            action, ctx = self.step_context(job, pattern, settings, i, audit)
            ctx = replace(ctx, checkpoint=reverter.checkpoint_for(i, step.action, ctx.params))
            reverter.add_step(i, action, ctx)
            plan.append((action, ctx))
        return plan

    def step_context(
        self, job: FixJob | ProbeJob, pattern: Pattern, settings: Settings, i: int, audit: AuditFn
    ) -> tuple[Action, ActionContext]:
        """Step ``i`` of the pattern's chain, its params rendered from the job's captures."""
        values = {**job.groups, "service": job.service, "pattern": pattern.id, "incident": str(job.incident_id)}
        step = pattern.steps[i]
        # Roles first, on the pattern's literal text: a captured group that reads "@redis" stays text.
        unresolved = ""
        try:
            literal = resolve(step.params, roles_for(settings.apps, job.service), job.service)
        except ActionRefused as exc:
            literal, unresolved = dict(step.params), str(exc)
        params = {k: render(v, values) for k, v in literal.items()}
        ctx = ActionContext(
            incident_id=job.incident_id,
            attempt_id=0,
            pattern_id=pattern.id,
            params=params,
            settings=settings.actions.get(step.action),
            runner=self.w.runner,
            state_dir=settings.state_dir,
            clock=self.w.clock,
            groups=dict(job.groups),
            audit=audit,
            unresolved=unresolved,
        )
        return get_action(step.action)(), ctx

    def _run(
        self,
        job: FixJob,
        pattern: Pattern,
        settings: Settings,
        plan: Sequence[tuple[Action, ActionContext]],
        reverter: Reverter,
        aid: int,
        names: Sequence[str],
    ) -> FixAttempt:
        w = self.w
        log.info("fix_started", actions=list(names))
        facts = wording.facts_of(settings.host, job.service, pattern.id, job.incident_id, plan)
        w.emit(
            [
                Notice(
                    NoticeKind.FIX_STARTED, pattern.severity, wording.started(aid, facts, job.trigger is Trigger.RETRY)
                )
            ]
        )
        chain = run_chain(plan, reverter)
        end = w.clock.now()
        watching = chain.outcome is Outcome.VERIFYING
        window = settings.engine.verify_window
        w.store.finish_attempt(
            aid,
            chain.outcome,
            end,
            chain.detail,
            chain.steps,
            verify_until=end + window if watching else None,
            revert_at=reverter.revert_at() if watching else None,
        )
        log.info("fix_finished", outcome=chain.outcome.value, detail=chain.detail)
        attempt = w.store.attempt(aid)
        assert attempt is not None
        outcome: Told | None = None  # applied and watched: the outcome is told when the window ends
        if watching:
            text = wording.applied(aid, facts, window)
        else:
            undone = wording.undone_text(chain.outcome.value, [(s.action, s.outcome.value) for s in chain.steps])
            text = wording.failed(aid, facts, chain.outcome.value, chain.detail, undone)
            outcome = Told.REFUSED if chain.outcome is Outcome.REFUSED else Told.FAILED
        w.emit([Notice(NoticeKind.FIX_RESULT, pattern.severity, text, attempt=attempt, outcome=outcome)])
        if not watching:  # after the result, so the escalation it may cause is read after it
            hostile = "" if chain.hostile is None else security_detail(pattern.id, chain.hostile)
            self.decider.after_failure(job.incident_id, pattern, chain.outcome, chain.detail, end, hostile)
        if w.metrics is not None:
            w.metrics.fix_attempts.labels(action="+".join(names), outcome=chain.outcome.value).inc()
        return attempt

    def cannot_run(
        self, incident_id: int, pattern: Pattern, groups: Mapping[str, str], service: str, *, roles: bool = True
    ) -> str:
        """Why this fix cannot run on this host ('' when it can): its allowlist, then the action's own check.

        ``roles=False`` (a pasted line: no service known) skips a step whose roles need the service.
        """
        job = ProbeJob(incident_id, pattern.id, dict(groups), service)
        for i in range(len(pattern.steps)):
            action, ctx = self.step_context(job, pattern, self.w.settings, i, _no_audit)
            if ctx.unresolved and not roles:
                continue
            try:
                action.admits(ctx)
                action.check(ctx)
            except HealerError as exc:
                return f"{action.name}: {exc}"
        return ""

    def facts_for(self, incident_id: int) -> wording.FixFacts | None:
        """The wording's facts of an incident's fix, rebuilt from the current settings (after the chain ran)."""
        w = self.w
        inc = w.store.incident(incident_id)
        pattern = w.by_id.get(inc.pattern_id) if inc is not None else None
        if inc is None or pattern is None:
            return None
        with w.store.tx() as db:
            groups = w.store.incident_facts(db, inc.id).groups
        job = ProbeJob(inc.id, pattern.id, dict(groups), inc.service)
        plan = [self.step_context(job, pattern, w.settings, i, _no_audit) for i in range(len(pattern.steps))]
        return wording.facts_of(w.settings.host, inc.service, pattern.id, inc.id, plan)

    # -- undo and settling --------------------------------------------------------
    def _restore(self, rec: AttemptRecord) -> tuple[Reverter, Pattern | None]:
        """The reverter of a saved attempt, its contexts built from the current settings."""
        w = self.w
        inc = w.store.incident(rec.incident_id)
        pattern_id = inc.pattern_id if inc is not None else ""

        def make_ctx(name: str, params: Mapping[str, str]) -> ActionContext:
            return ActionContext(
                incident_id=rec.incident_id,
                attempt_id=0,
                pattern_id=pattern_id,
                params=dict(params),
                settings=w.settings.actions.get(name),
                runner=w.runner,
                state_dir=w.settings.state_dir,
                clock=w.clock,
            )

        return Reverter.restore(rec.undo_state, make_ctx), w.by_id.get(pattern_id)

    def undo_attempt(self, attempt_id: int, reason: str) -> Outcome:
        """Roll back a fix that did not hold; its locks are released only afterwards."""
        w = self.w
        rec = w.store.attempt_record(attempt_id)
        if rec is None:
            return Outcome.FAILED
        reverter, pattern = self._restore(rec)
        with bound_contextvars(incident=rec.incident_id, attempt=attempt_id, pattern=pattern.id if pattern else ""):
            outcome = reverter.rollback([], default=Outcome.FAILED)
            now = w.clock.now()
            with w.store.tx() as db:
                w.store.set_outcome(db, attempt_id, outcome, f"{reason}; {outcome.value}", now)
                detail = {"attempt": attempt_id, "outcome": outcome.value}
                w.store.audit_in(db, AuditKind.FIX_UNDONE, "engine", detail, now)
            log.info("fix_undone", outcome=outcome.value, reason=reason)
            if pattern is not None:
                self.decider.after_failure(rec.incident_id, pattern, outcome, reason, now)
                facts = self.facts_for(rec.incident_id)
                if facts is not None:
                    undone = (
                        "rolled back " + ", ".join(rec.actions)
                        if outcome is Outcome.ROLLED_BACK
                        else (wording.undone_text(outcome.value, []))
                    )
                    text = wording.failed(attempt_id, facts, outcome.value, reason, undone)
                    w.emit([Notice(NoticeKind.FIX_RESULT, pattern.severity, text, attempt=w.store.attempt(attempt_id),
                                   outcome=Told.FAILED)])  # fmt: skip
        if w.metrics is not None:
            w.metrics.fix_attempts.labels(action="undo", outcome=outcome.value).inc()
        return outcome

    def undo_by_hand(self, attempt_id: int, actor: str) -> tuple[bool, str]:
        """``healer undo N`` / the Undo button: put back a fix that worked. A human's choice, not a failure."""
        w = self.w
        rec = w.store.attempt_record(attempt_id)
        if rec is None:
            return False, f"fix #{attempt_id}: no such fix"
        if rec.outcome not in (Outcome.SUCCEEDED, Outcome.VERIFYING) or not rec.undo_state:
            return False, f"fix #{attempt_id} is {rec.outcome.value}: nothing to undo"
        with w.store.tx() as db:  # claim it: the verify sweep or a second press must not settle it meanwhile
            claimed = w.store.set_outcome(db, attempt_id, Outcome.UNDOING, f"undo by {actor}", w.clock.now(),
                                          expect=rec.outcome)  # fmt: skip
        if not claimed:
            return False, f"fix #{attempt_id} changed meanwhile: nothing to undo"
        reverter, pattern = self._restore(rec)
        with bound_contextvars(incident=rec.incident_id, attempt=attempt_id, pattern=pattern.id if pattern else ""):
            outcome = reverter.rollback([], default=Outcome.FAILED)
            now = w.clock.now()
            with w.store.tx() as db:
                w.store.set_outcome(db, attempt_id, outcome, f"undone by {actor}; {outcome.value}", now)
                data = {"attempt": attempt_id, "outcome": outcome.value, "by": actor}
                w.store.audit_in(db, AuditKind.FIX_UNDONE, actor, data, now)
            log.info("fix_undone_by_hand", outcome=outcome.value, by=actor)
        ok = outcome is Outcome.ROLLED_BACK
        head = f"fix #{attempt_id} undone by {actor}" if ok else f"fix #{attempt_id}: undo by {actor} {outcome.value}"
        facts = self.facts_for(rec.incident_id)
        lines = [head, *(wording.context_lines(facts) if facts is not None else [])]
        lines.append("undone: rolled back " + ", ".join(rec.actions) if ok else "undone: " + wording.undone_text(
            outcome.value, []))  # fmt: skip
        text = "\n".join(lines)
        severity = pattern.severity if pattern is not None else Severity.HIGH
        w.emit([Notice(NoticeKind.FIX_RESULT, severity, text, attempt=w.store.attempt(attempt_id))])
        return ok, text

    def finalize_due(self) -> list[int]:
        """Fixes whose verify window passed quietly are now succeeded."""
        store = self.w.store
        now = self.w.clock.now()
        done = []
        for aid, incident_id in store.verifying_due(now):
            with store.tx() as db:
                # Only from VERIFYING: a recurrence may have flipped it to UNDOING meanwhile.
                quiet = "quiet through the verify window"
                if store.set_outcome(db, aid, Outcome.SUCCEEDED, quiet, now, expect=Outcome.VERIFYING):
                    store.set_incident_status(db, incident_id, IncidentStatus.FIXED, now)
                    done.append(aid)
            if done and done[-1] == aid:
                self._told_success(aid, incident_id)
        return done

    def _told_success(self, aid: int, incident_id: int) -> None:
        w = self.w
        facts = self.facts_for(incident_id)
        inc = w.store.incident(incident_id)
        if facts is None or inc is None:
            return
        pattern = w.by_id.get(inc.pattern_id)
        with bound_contextvars(incident=incident_id, attempt=aid, pattern=inc.pattern_id):
            log.info("fix_succeeded")
        text = wording.succeeded(aid, facts, w.settings.engine.verify_window)
        severity = pattern.severity if pattern is not None else inc.severity
        w.emit([Notice(NoticeKind.FIX_RESULT, severity, text, incident=inc, attempt=w.store.attempt(aid),
                       outcome=Told.SUCCEEDED)])  # fmt: skip

    def due_reverts(self) -> list[int]:
        """Undo fixes whose ``revert_at`` has come (model fallback: the primary comes back)."""
        store = self.w.store
        now = self.w.clock.now()
        done = []
        for rec in store.reverts_due(now):
            reverter, _ = self._restore(rec)
            undone = reverter.rollback([], default=Outcome.FAILED)
            with store.tx() as db:
                store.mark_reverted(db, rec.id, now)
                store.audit_in(db, AuditKind.FIX_REVERTED, "engine", {"attempt": rec.id, "result": undone.value}, now)
            log.info("fix_reverted", attempt=rec.id, result=undone.value)
            done.append(rec.id)
        return done

    def recover(self) -> list[tuple[int, Outcome]]:
        """After a crash: settle attempts left RUNNING (verify, or undo) or UNDOING (undo).

        A chain whose every step applied and still verifies goes back to
        VERIFYING for a full window rather than straight to succeeded.
        """
        w = self.w
        out = []
        for rec in w.store.unsettled_attempts():
            if rec.outcome is Outcome.UNDOING:
                out.append((rec.id, self.undo_attempt(rec.id, "undo interrupted by a restart")))
                continue
            reverter, pattern = self._restore(rec)
            outcome, detail = reverter.settle_interrupted(len(rec.actions))
            now = w.clock.now()
            watching = outcome is Outcome.VERIFYING
            with w.store.tx() as db:
                until = now + w.settings.engine.verify_window if watching else None
                w.store.set_outcome(db, rec.id, outcome, detail, now, verify_until=until)
                audit = {"attempt": rec.id, "outcome": outcome.value}
                w.store.audit_in(db, AuditKind.FIX_RECOVERED, "engine", audit, now)
            log.warning("fix_recovered", attempt=rec.id, outcome=outcome.value)
            if not watching and pattern is not None:
                self.decider.after_failure(rec.incident_id, pattern, outcome, detail, now)
            out.append((rec.id, outcome))
        w.store.release_stale_locks()
        return out
