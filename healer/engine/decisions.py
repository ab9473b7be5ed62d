"""Take a decision, record it, and carry out what it implies (a job, a question, an escalation).

Also the other end of a failed fix: escalate the incident after its last
allowed attempt, and trip the circuit breaker after too many failures.
"""

from __future__ import annotations

from collections.abc import Mapping

from healer.core.enums import AuditKind, IncidentStatus, Outcome, Reason, Trigger, Verdict
from healer.core.jobs import FixJob, IngestResult
from healer.core.notices import Notice, NoticeKind
from healer.core.records import Decision, Incident
from healer.engine import guardrails
from healer.engine.policy import Ruling, Subject, decide, describe, gate
from healer.engine.wiring import Wiring
from healer.rules.patterns import Pattern
from healer.store.db import Tx


class Decider:
    def __init__(self, w: Wiring) -> None:
        self.w = w

    def rule(self, db: Tx, inc: Incident, subject: Subject, pattern: Pattern, now: float, trigger: Trigger) -> Ruling:
        guards = guardrails.guardrails(self.w.settings, draining=self.w.draining)
        early = gate(subject, pattern, guards)
        if early is not None:
            return early
        snap = guardrails.snapshot(self.w.store, db, inc, subject, pattern, now, trigger)
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
    ) -> Decision:
        """``n`` matches of one fingerprint in a batch share this one decision."""
        store = self.w.store
        # The ruling's detail names the incident's service; the approval asked for the event's (as before).
        ruling = self.rule(db, inc, Subject(inc.id, inc.service, dict(groups)), pattern, now, trigger)
        if ruling.reopen:
            store.reopen_escalated(db, inc.id)
        ask = ruling.verdict is Verdict.ASK
        decision, new = store.record_decision(
            db,
            inc.id,
            pattern.id,
            ruling.verdict,
            ruling.reason,
            now,
            ruling.detail,
            expires_at=now + self.w.settings.engine.approval_ttl if ask else None,
            trigger=trigger,
            collapse=trigger is Trigger.AUTO,
            repeats=n,
        )
        result.decisions.append(decision)
        if decision.verdict is Verdict.ACT:
            result.jobs.append(FixJob(decision, inc.id, pattern.id, dict(groups), service, trigger))
        elif decision.verdict is Verdict.ASK and new:
            chain = describe(pattern, Subject(inc.id, service, dict(groups)))
            store.set_approval_context(db, decision.id, groups, service, chain)
            result.notices.append(
                Notice(
                    NoticeKind.APPROVAL,
                    pattern.severity,
                    f"{pattern.id} wants to run {chain}",
                    incident=inc,
                    decision=decision,
                )
            )
        elif decision.verdict is Verdict.ESCALATE and new:
            store.set_incident_status(db, inc.id, IncidentStatus.ESCALATED, decision.ts)
            result.notices.append(
                Notice(
                    NoticeKind.ESCALATION,
                    pattern.severity,
                    f"{pattern.id}: escalated to a human ({decision.reason.value}: {decision.detail})",
                    incident=inc,
                    decision=decision,
                )
            )
        return decision

    def breaker_open(self, now: float) -> bool:
        return guardrails.breaker_open(self.w.store, now)

    def after_failure(self, incident_id: int, pattern: Pattern, outcome: Outcome, detail: str, now: float) -> None:
        """A fix failed (or was undone): escalate after the last attempt; trip the breaker after too many."""
        e = self.w.settings.engine
        store = self.w.store
        notices: list[Notice] = []
        with store.tx() as db:
            inc = store.incident_in(db, incident_id)
            if inc.attempts >= pattern.max_attempts and inc.status is not IncidentStatus.ESCALATED:
                store.set_incident_status(db, incident_id, IncidentStatus.ESCALATED, now)
                d, _ = store.record_decision(
                    db,
                    incident_id,
                    pattern.id,
                    Verdict.ESCALATE,
                    Reason.MAX_ATTEMPTS,
                    now,
                    f"{inc.attempts} attempts failed; last: {detail}",
                    collapse=False,
                )
                notices.append(
                    Notice(
                        NoticeKind.ESCALATION,
                        pattern.severity,
                        f"{pattern.id}: {inc.attempts} fixes failed, escalated to a human",
                        incident=inc,
                        decision=d,
                    )
                )
            if not self.breaker_open(now) and store.failures_since(db, now - e.breaker_window) >= e.breaker_failures:
                until = now + e.breaker_cooldown
                store.open_breaker(db, until)
                store.audit_in(db, AuditKind.BREAKER_TRIPPED, "engine", {"until": until, "last": outcome.value}, now)
                notices.append(
                    Notice(
                        NoticeKind.BREAKER,
                        pattern.severity,
                        f"circuit breaker open for {e.breaker_cooldown:.0f}s after "
                        f"{e.breaker_failures} failed fixes: notify-only",
                    )
                )
        self.w.emit(notices)
