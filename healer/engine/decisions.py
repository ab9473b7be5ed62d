"""Take a decision, record it, and carry out what it implies (a job, a question, an escalation).

Also the other end of a failed fix: escalate the incident when a human is
needed (``policy.after_failure``: hostile input, flapping, last attempt
used), and trip the circuit breaker after too many failures,
itself an escalation that names the fixes that tripped it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from healer.core.enums import AuditKind, IncidentStatus, Outcome, PatternMode, Reason, Severity, Trigger, Verdict
from healer.core.jobs import FixJob, IngestResult, ProbeJob
from healer.core.notices import Notice, NoticeKind, Told
from healer.core.records import Decision, Incident
from healer.engine import guardrails, wording
from healer.engine.policy import (
    REHEARSED,
    FailureFacts,
    Ruling,
    Subject,
    after_failure,
    decide,
    describe,
    gate,
    shadowed,
)
from healer.engine.triage import incident_triage
from healer.engine.wiring import Wiring
from healer.remedy.base import Confirmation
from healer.rules.patterns import Pattern
from healer.store.db import Tx


class Decider:
    def __init__(self, w: Wiring) -> None:
        self.w = w
        # Set by the Fixer (it builds the step contexts): why a fix cannot run here, '' when it can.
        self.cannot_run: Callable[[int, Pattern, Mapping[str, str], str], str] | None = None

    def rule(
        self,
        db: Tx,
        inc: Incident,
        subject: Subject,
        pattern: Pattern,
        now: float,
        trigger: Trigger,
        found: Confirmation | None = None,
    ) -> Ruling:
        """``found`` is what a probe just found; without it, the verdict held for the incident counts.

        A pattern in shadow mode is ruled as if active (dry run aside: it never acts anyway, and
        a replay should say what it would have done), then recorded as ``skip (shadow)``.
        """
        if self.mode(db, pattern) is PatternMode.SHADOW:
            ruling = self._rule(db, inc, subject, pattern, now, trigger, found, shadow=True)
            return shadowed(ruling, pattern, subject)
        return self._rule(db, inc, subject, pattern, now, trigger, found)

    def mode(self, db: Tx, pattern: Pattern) -> PatternMode:
        """The operator's override (``healer patterns promote/demote``), else the pattern file's mode."""
        return self.w.store.mode_override(db, pattern.id) or pattern.mode

    def _rule(
        self,
        db: Tx,
        inc: Incident,
        subject: Subject,
        pattern: Pattern,
        now: float,
        trigger: Trigger,
        found: Confirmation | None,
        *,
        shadow: bool = False,
    ) -> Ruling:
        guards = guardrails.guardrails(self.w.settings, draining=self.w.draining)
        if shadow:
            guards = replace(guards, dry_run=False)
        # Dry run is the chain's last step (policy.rehearsed): every guardrail before it still applies.
        early = gate(subject, pattern, replace(guards, dry_run=False))
        if early is not None:
            return early
        settings = self.w.settings
        retry_for = settings.preconditions.retry_for
        priority = incident_triage(self.w.store, db, inc, settings, now).priority if guards.ask_at else None
        snap = guardrails.snapshot(
            self.w.store, db, inc, subject, pattern, now, trigger, retry_for=retry_for, priority=priority
        )
        if guards.dry_run:
            snap = guardrails.with_rehearsals(self.w.store, db, snap, now, settings.engine.approval_ttl)
        if pattern.confirm and trigger is Trigger.AUTO:
            held = self.w.holds.look(inc.id, now)
            snap = replace(snap, confirmation=found or held.confirmation, probing=found is None and held.probing)
        return decide(snap, pattern, guards, now, trigger)

    def decide_and_record(
        self,
        db: Tx,
        inc: Incident,
        pattern: Pattern,
        groups: Mapping[str, str],
        service: str,
        now: float,
        trigger: Trigger,
        result: IngestResult,
        n: int = 1,
        found: Confirmation | None = None,
    ) -> Decision:
        """``n`` matches of one fingerprint in a batch share this one decision; ``found``: what a probe just found."""
        store = self.w.store
        # The ruling's detail names the incident's service; the approval asked for the event's (as before).
        ruling = self.rule(db, inc, Subject(inc.id, inc.service, dict(groups)), pattern, now, trigger, found)
        # Only a question is checked here: an automatic fix's chain runs the same check and reports a refusal.
        asks = self.cannot_run is not None and ruling.verdict is Verdict.ASK
        why_not = self.cannot_run(inc.id, pattern, groups, service) if self.cannot_run and asks else ""
        if why_not:  # never Approve/Reject (nor a doomed attempt) for a fix this host cannot run
            ruling = replace(ruling, verdict=Verdict.NOTIFY, reason=Reason.CANNOT_RUN, detail=f"cannot run: {why_not}")
        if ruling.reopen:
            store.reopen_escalated(db, inc.id)
        # A dry run's would-run or would-ask is its own row, as the fix or the question would be.
        collapse = trigger is Trigger.AUTO and ruling.reason not in REHEARSED
        decision, new = self.record(db, inc, pattern, ruling, now, trigger, collapse=collapse, repeats=n)
        result.decisions.append(decision)
        if ruling.reason in REHEARSED:
            # The fix pool runs the action's own check and records a refusal (Fixer.rehearse); nothing else.
            result.jobs.append(FixJob(decision, inc.id, pattern.id, dict(groups), service, trigger))
        elif ruling.probe:
            self.w.holds.begin(inc.id, now)
            result.jobs.append(ProbeJob(inc.id, pattern.id, dict(groups), service))
        elif decision.verdict is Verdict.ACT:
            result.jobs.append(FixJob(decision, inc.id, pattern.id, dict(groups), service, trigger))
        elif decision.verdict is Verdict.ASK and new:
            result.notices.append(self.ask(db, inc, pattern, decision, groups, service, ruling.detail))
        elif decision.reason is Reason.CANNOT_RUN and new:
            where = wording.where(self.w.settings.host, service, pattern.id, inc.id)
            text = "\n".join(
                [f"fix not offered: {decision.detail}", where, "next: set that config key, then 'fix errors'"]
            )
            result.notices.append(
                Notice(
                    NoticeKind.FIX_RESULT, pattern.severity, text, incident=inc, decision=decision, outcome=Told.REFUSED
                )
            )
        elif decision.verdict is Verdict.ESCALATE and new:
            store.set_incident_status(db, inc.id, IncidentStatus.ESCALATED, decision.ts)
            result.notices.append(
                Notice(
                    NoticeKind.ESCALATION,
                    _urgent(pattern.severity),
                    self._escalation(inc, pattern.id, decision.reason, decision.detail),
                    incident=inc,
                    decision=decision,
                    outcome=Told.ESCALATED,
                )
            )
        return decision

    def record(
        self,
        db: Tx,
        inc: Incident,
        pattern: Pattern,
        ruling: Ruling,
        now: float,
        trigger: Trigger,
        *,
        collapse: bool,
        repeats: int = 1,
    ) -> tuple[Decision, bool]:
        """Record ``ruling`` as the incident's decision; an ``ask`` expires after ``approval_ttl``."""
        ask = ruling.verdict is Verdict.ASK
        return self.w.store.record_decision(
            db,
            inc.id,
            pattern.id,
            ruling.verdict,
            ruling.reason,
            now,
            ruling.detail,
            expires_at=now + self.w.settings.engine.approval_ttl if ask else None,
            trigger=trigger,
            collapse=collapse,
            repeats=repeats,
        )

    def ask(
        self,
        db: Tx,
        inc: Incident,
        pattern: Pattern,
        decision: Decision,
        groups: Mapping[str, str],
        service: str,
        why: str = "",
    ) -> Notice:
        """Keep what the fix needs once approved; the approval message, with ``why`` it asks (if not the pattern)."""
        chain = describe(pattern, Subject(inc.id, service, dict(groups)))
        self.w.store.set_approval_context(db, decision.id, groups, service, f"{chain}; {why}" if why else chain)
        text = f"{pattern.id} wants to run {chain}" + (f"\n{why}" if why else "")
        return Notice(NoticeKind.APPROVAL, pattern.severity, text, incident=inc, decision=decision)

    def expire_due(self, now: float) -> int:
        """Tell each question nobody answered in time that it expired (the bot removes its buttons)."""
        ttl = self.w.settings.engine.approval_ttl
        notices = []
        for d, service in self.w.store.expire_approvals(now):
            inc = self.w.store.incident(d.incident_id)
            pattern = self.w.by_id.get(d.pattern_id)
            severity = pattern.severity if pattern is not None else Severity.HIGH
            again = "healer asks again the next time the error fires; 'fix errors' runs it now"
            text = wording.expired(d.id, d.pattern_id, self.w.settings.host, service, ttl, again)
            notices.append(Notice(NoticeKind.EXPIRED, severity, text, incident=inc, decision=d, outcome=Told.EXPIRED))
        self.w.emit(notices)
        return len(notices)

    def breaker_open(self, now: float) -> bool:
        return guardrails.breaker_open(self.w.store, now)

    def after_failure(
        self, incident_id: int, pattern: Pattern, outcome: Outcome, detail: str, now: float, hostile: str = ""
    ) -> None:
        """A fix failed (or was undone): escalate when a human is needed; trip the breaker after too many.

        ``hostile`` describes a captured value a step refused as an injection
        attempt: escalated as a security notice, whatever the attempt count.
        """
        e = self.w.settings.engine
        store = self.w.store
        notices: list[Notice] = []
        with store.tx() as db:
            inc = store.incident_in(db, incident_id)
            facts = self._failure_facts(db, inc, hostile)
            ruling = after_failure(facts, pattern)
            if ruling is not None:
                last = f"; last: {detail}" if ruling.reason is not Reason.HOSTILE_INPUT else ""
                notices.append(self._escalate(db, inc, pattern, ruling.reason, ruling.detail + last, now))
            if not self.breaker_open(now) and store.failures_since(db, now - e.breaker_window) >= e.breaker_failures:
                notices.append(self._trip_breaker(db, inc, pattern, outcome, now))
        self.w.emit(notices)

    def _failure_facts(self, db: Tx, inc: Incident, hostile: str) -> FailureFacts:
        return FailureFacts(inc.status, inc.attempts, guardrails.unheld(self.w.store, db, inc.id), hostile)

    def _escalate(self, db: Tx, inc: Incident, pattern: Pattern, reason: Reason, detail: str, now: float) -> Notice:
        """Record the ESCALATE decision and mark the incident; the notice is always at least high severity."""
        store = self.w.store
        store.set_incident_status(db, inc.id, IncidentStatus.ESCALATED, now)
        d, _ = store.record_decision(db, inc.id, pattern.id, Verdict.ESCALATE, reason, now, detail, collapse=False)
        if reason is Reason.HOSTILE_INPUT:
            store.audit_in(db, AuditKind.SECURITY_REFUSAL, "engine", {"incident": inc.id, "detail": detail}, now)
            text = f"SECURITY: {pattern.id}: {detail}. Nothing was executed; a human should look at the source."
            return Notice(
                NoticeKind.ESCALATION, Severity.CRITICAL, text, incident=inc, decision=d, outcome=Told.ESCALATED
            )
        text = self._escalation(inc, pattern.id, reason, detail)
        return Notice(
            NoticeKind.ESCALATION, _urgent(pattern.severity), text, incident=inc, decision=d, outcome=Told.ESCALATED
        )

    def _escalation(self, inc: Incident, pattern_id: str, reason: Reason, detail: str) -> str:
        """The escalation, then where (host, service) and what the human is expected to do."""
        where = (
            f"host {self.w.settings.host} · service {inc.service or '-'} · pattern {pattern_id} · incident #{inc.id}"
        )
        todo = "next: no more automatic fixes for this incident; look at it, then 'explain " + f"{inc.id}'"
        return "\n".join([escalation_text(pattern_id, reason, detail), where, todo])

    def _trip_breaker(self, db: Tx, inc: Incident, pattern: Pattern, outcome: Outcome, now: float) -> Notice:
        """Open the breaker and say, once, which failed fixes tripped it."""
        e = self.w.settings.engine
        store = self.w.store
        until = now + e.breaker_cooldown
        store.open_breaker(db, until)
        store.audit_in(db, AuditKind.BREAKER_TRIPPED, "engine", {"until": until, "last": outcome.value}, now)
        failed = store.failed_since(db, now - e.breaker_window)
        which = "; ".join(f"fix #{a} of {p} (incident #{i}): {d[:120]}" for a, i, p, d in failed)
        detail = (
            f"circuit breaker open for {e.breaker_cooldown:.0f}s after {e.breaker_failures} failed fixes"
            f" in {e.breaker_window:.0f}s; every fix is notify-only until then. Tripped by: {which}"
        )
        d, _ = store.record_decision(
            db, inc.id, pattern.id, Verdict.ESCALATE, Reason.CIRCUIT_OPEN, now, detail, collapse=False
        )
        return Notice(
            NoticeKind.ESCALATION, _urgent(pattern.severity), detail, incident=inc, decision=d, outcome=Told.ESCALATED
        )


def escalation_text(pattern_id: str, reason: Reason, detail: str) -> str:
    return f"{pattern_id}: escalated to a human ({reason.value}): {detail}"


def _urgent(severity: Severity) -> Severity:
    """An escalation needs a human now: never below high, whatever the pattern's own severity."""
    return severity if severity.rank <= Severity.HIGH.rank else Severity.HIGH
