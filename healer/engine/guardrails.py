"""Read what the decision policy needs from the store, inside the decision's transaction.

The one place that turns store facts into an ``IncidentSnapshot``; the
policy itself (``policy.py``) stays pure. Counters are read only when the
chain can reach them: the threshold only for automatic matches of a
pattern that has one, and nothing at all when ``gate`` already ruled.
"""

from __future__ import annotations

from dataclasses import replace

from healer.core.enums import Priority, Trigger
from healer.core.records import Incident
from healer.engine.evidence import did_not_hold
from healer.engine.policy import ActiveFix, Guardrails, IncidentSnapshot, Subject
from healer.rules.patterns import Pattern
from healer.settings.schema import Settings
from healer.store.db import Store, Tx

HOUR = 3600.0


def guardrails(settings: Settings, *, draining: bool) -> Guardrails:
    e = settings.engine
    return Guardrails(
        kill_switch=settings.kill_switch,
        draining=draining,
        dry_run=settings.dry_run,
        fix_budget_per_hour=e.fix_budget_per_hour,
        failure_memory=e.failure_memory,
        ask_at=settings.triage.ask_at,
    )


def breaker_open(store: Store, now: float) -> bool:
    until = store.breaker_open_until()
    return until is not None and until > now


def unheld(store: Store, db: Tx, incident_id: int) -> int:
    """How many of the incident's newest settled attempts, in a row, took effect and then did not hold.

    Recurred within the verify window, or undone by the fault within the step's own probe (a
    restarted service down again within ``stay_up``: the issue's "restart held < N s").
    """
    count = 0
    for a in store.past_attempts(db, incident_id):
        if not did_not_hold(a.detail):
            break
        count += 1
    return count


def snapshot(
    store: Store,
    db: Tx,
    inc: Incident,
    subject: Subject,
    pattern: Pattern,
    now: float,
    trigger: Trigger,
    *,
    retry_for: float = 0.0,
    priority: Priority | None = None,
) -> IncidentSnapshot:
    """``inc`` is the incident as the batch just recorded it; only its fix times are read again.

    ``retry_for``: how long a precondition's block stands against automatic matches.
    """
    last_fix_at, escalated_at = store.fix_times(db, inc.id)
    matches = 1
    if trigger is Trigger.AUTO and pattern.threshold_count > 1:
        since = now - pattern.threshold_window
        matches = store.count_in_window(db, subject.incident_id, since, pattern.threshold_count)
    active = store.active_attempt(db, subject.incident_id)
    # Read only when the cooldown could apply: a fix that did not hold waives it (policy._cooling).
    cooling = trigger is Trigger.AUTO and last_fix_at is not None and now - last_fix_at < pattern.cooldown
    return IncidentSnapshot(
        subject=subject,
        status=inc.status,
        attempts=inc.attempts,
        unheld=unheld(store, db, inc.id) if cooling else 0,
        last_fix_at=last_fix_at,
        escalated_at=escalated_at,
        active=None if active is None else ActiveFix(active.id, active.outcome),
        pending_approval=store.pending_approval(db, subject.incident_id, now),
        matches_in_window=matches,
        fixes_last_hour=store.acts_since(db, now - HOUR),
        breaker_open=breaker_open(store, now),
        priority=priority,
        blocked=store.blocked_detail(db, inc.id, now - retry_for) if trigger is Trigger.AUTO and retry_for else "",
    )


def with_rehearsals(store: Store, db: Tx, snap: IncidentSnapshot, now: float, approval_ttl: float) -> IncidentSnapshot:
    """In dry run, the fixes that would have run count as run, and a question that would have been asked as asked.

    So cooldown, the hourly budget and a pending approval hold a dry run's
    decisions back exactly as they would hold the daemon's: a storm is one
    would-run, not one per line. Each fix that would run is assumed to hold
    (a dry run cannot see a verify window or an undo).
    """
    r = store.rehearsals(db, snap.subject.incident_id, now - HOUR, now - approval_ttl)
    last = snap.last_fix_at
    if r.last_run is not None and (last is None or r.last_run > last):
        last = r.last_run
    return replace(
        snap,
        last_fix_at=last,
        fixes_last_hour=snap.fixes_last_hour + r.runs_since,
        pending_approval=snap.pending_approval or r.asked,
    )
