"""The decision chain as a pure function: what to do about one match of one incident.

No store, no clock, no settings object: ``decide`` reads a frozen snapshot
of the incident and its guardrail counters (built by ``guardrails.py``) and
returns a ``Ruling``. The chain, in order, the first that applies wins:

 1. notify only (no steps, or ``approval: never``)
 2. kill switch          3. draining
 5. threshold (automatic matches only); for a ``confirm: true`` pattern the
    probe's held verdict instead: refuted -> notify only, stuck (the fault is
    there and the fix can only refuse it) -> escalate, a probe under way
    -> skip, unknown -> the threshold after all, none or confirmed -> waived
 6. a fix already in progress on the incident
 7. an approval already pending; a fix a precondition blocked (automatic
    matches only: the retry job decides it again once the check clears)
 8. escalated within ``failure_memory`` (after it: reopened, fresh count); an
    incident that was escalated that recently, then resolved, and is back
    escalates again (the same fault failed before) instead of being retried
 9. max attempts (escalates)
10. cooldown (automatic matches only; a clock stepped back still cools down),
    waived once after a fix that did not hold, so flapping can be told
11. hourly budget       12. circuit breaker
13. approval asked (unless this decision follows an approval): by the
    pattern, or by the incident's triage (``triage.ask_at``)
14. act; for a ``confirm: true`` pattern with no verdict yet, the act (or
    the ask) becomes "confirming": the worker probes and decides again

``gate`` is steps 1-4, which need nothing from the store: the guardrails
reader calls it first so a notify-only storm costs no queries.

``shadowed`` turns a ruling into what a pattern in shadow mode records: a
``skip (shadow)`` whose detail says what the pattern would have done (so its
figures show how often it would have fixed something), and nothing more.

``after_failure`` is the other pure ruling: once a fix failed or did not
hold, whether the incident now goes to a human, and why (first wins):
a step refused a captured value as hostile, the fix did not hold twice in
a row (flapping), the last allowed attempt was used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from healer.core.enums import Approval, Confirm, IncidentStatus, Outcome, Priority, Reason, Trigger, Verdict
from healer.remedy.base import Confirmation, render
from healer.rules.patterns import Pattern


@dataclass(frozen=True, slots=True)
class Subject:
    """What a decision is about: the incident and the values its fix would be rendered with."""

    incident_id: int
    service: str
    groups: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Guardrails:
    """The switches and limits from the settings, plus whether the daemon is shutting down."""

    kill_switch: bool = False
    draining: bool = False
    dry_run: bool = False
    fix_budget_per_hour: int = 10
    failure_memory: float = 86400.0
    ask_at: Priority | None = None  # triage.ask_at: a fix at this priority or more urgent asks


@dataclass(frozen=True, slots=True)
class ActiveFix:
    id: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class IncidentSnapshot:
    """The incident's state and the guardrail counters, read in the decision's transaction."""

    subject: Subject
    status: IncidentStatus = IncidentStatus.OPEN
    attempts: int = 0
    # The newest attempts in a row that applied and then did not hold (read only while cooling down).
    unheld: int = 0
    last_fix_at: float | None = None
    escalated_at: float | None = None
    active: ActiveFix | None = None
    pending_approval: bool = False
    matches_in_window: int = 1
    fixes_last_hour: int = 0
    breaker_open: bool = False
    # Why a precondition blocked the incident's fix, while that still stands ('' when none did).
    blocked: str = ""
    priority: Priority | None = None  # read only when triage.ask_at is set
    # A confirm: pattern's probe verdict held for the incident, and whether a probe is under way.
    confirmation: Confirmation | None = None
    probing: bool = False


@dataclass(frozen=True, slots=True)
class FailureFacts:
    """What the escalation rules read once a fix of the incident failed or was undone.

    ``unheld`` counts the newest attempts in a row that applied, verified and
    then did not hold (undone on a recurrence); ``hostile`` describes a
    refused hostile value ("" if none).
    """

    status: IncidentStatus
    attempts: int
    unheld: int = 0
    hostile: str = ""


@dataclass(frozen=True, slots=True)
class Ruling:
    """A verdict with its reason and a detail a human can read.

    ``reopen`` is set when an escalation is older than ``failure_memory``:
    the caller reopens the incident with a fresh attempt count, which is why
    max attempts did not apply. ``probe`` asks the caller to run the
    pattern's confirmation probe and decide again with its verdict.
    """

    verdict: Verdict
    reason: Reason
    detail: str = ""
    reopen: bool = False
    probe: bool = False


def describe(pattern: Pattern, subject: Subject) -> str:
    """The chain as it would run, e.g. ``restart(unit=app) → command(command=ok)``."""
    values = {**subject.groups, "service": subject.service, "pattern": pattern.id, "incident": str(subject.incident_id)}
    parts = []
    for s in pattern.steps:
        params = ", ".join(f"{k}={render(v, values)}" for k, v in s.params.items())
        parts.append(f"{s.action}({params})")
    return " → ".join(parts) or "nothing"


def gate(subject: Subject, pattern: Pattern, guards: Guardrails) -> Ruling | None:
    """Steps 1-4: the rulings that need nothing from the store."""
    if not pattern.steps or pattern.approval is Approval.NEVER:
        return Ruling(Verdict.NOTIFY, Reason.NOTIFY_ONLY, "pattern has no automatic fix")
    if guards.kill_switch:
        return Ruling(Verdict.SKIP, Reason.KILL_SWITCH, "kill_switch is on in the config")
    if guards.draining:
        return Ruling(Verdict.SKIP, Reason.DRAINING, "shutting down")
    if guards.dry_run:
        return Ruling(Verdict.SKIP, Reason.DRY_RUN, "would run " + describe(pattern, subject))
    return None


REHEARSED = frozenset({Reason.DRY_RUN, Reason.DRY_RUN_ASK, Reason.DRY_RUN_REFUSED})
"""The reasons of a dry run's decision that stands for a fix that would have started (or asked)."""


def rehearsed(ruling: Ruling, pattern: Pattern, subject: Subject) -> Ruling:
    """Step 15: in dry run, an act or an ask becomes a skip that says what would have happened."""
    chain = describe(pattern, subject)
    if ruling.probe:
        detail = f"would probe the fault, then run {chain} if it is confirmed"
        return replace(ruling, verdict=Verdict.SKIP, reason=Reason.DRY_RUN, detail=detail, probe=False)
    if ruling.verdict is Verdict.ACT:
        return replace(ruling, verdict=Verdict.SKIP, reason=Reason.DRY_RUN, detail=f"would run {chain}")
    if ruling.verdict is Verdict.ASK:
        why = f" ({ruling.detail})" if ruling.detail else ""
        return replace(ruling, verdict=Verdict.SKIP, reason=Reason.DRY_RUN_ASK, detail=f"would ask to run {chain}{why}")
    return ruling


def decide(snap: IncidentSnapshot, pattern: Pattern, guards: Guardrails, now: float, trigger: Trigger) -> Ruling:
    ruling = _decide(snap, pattern, replace(guards, dry_run=False), now, trigger)
    return rehearsed(ruling, pattern, snap.subject) if guards.dry_run else ruling


def _decide(snap: IncidentSnapshot, pattern: Pattern, guards: Guardrails, now: float, trigger: Trigger) -> Ruling:
    early = gate(snap.subject, pattern, guards)
    if early is not None:
        return early
    probed = pattern.confirm and trigger is Trigger.AUTO
    found = snap.confirmation if probed else None
    if probed and found is not None and found.status is Confirm.REFUTED:
        return Ruling(Verdict.NOTIFY, Reason.REFUTED, found.detail)
    # Stuck: before the threshold, approval and cooldown, since no fix can run, a human is told now, once
    # (the escalated incident then skips as failed_before). Not over a fix in progress or a pending
    # approval: those are settled first, by the fix or by the human asked.
    settled_first = snap.active is not None or snap.pending_approval or snap.status is IncidentStatus.ESCALATED
    if found is not None and found.status is Confirm.STUCK and not settled_first:
        return Ruling(Verdict.ESCALATE, Reason.NEEDS_HUMAN, f"a human is needed: {found.detail}")
    if probed and snap.probing:
        return Ruling(Verdict.SKIP, Reason.CONFIRMING, "a probe is checking the fault")
    # A probe replaces counting lines, except when it could not tell.
    counted = not probed or (found is not None and found.status is Confirm.UNKNOWN)
    if (
        counted
        and trigger is Trigger.AUTO
        and pattern.threshold_count > 1
        and snap.matches_in_window < pattern.threshold_count
    ):
        count = f"{snap.matches_in_window}/{pattern.threshold_count} in {pattern.threshold_window:g}s"
        return Ruling(Verdict.SKIP, Reason.THRESHOLD, count if found is None else f"{found.detail}; {count}")
    if snap.active is not None:
        return Ruling(Verdict.SKIP, Reason.IN_PROGRESS, f"attempt #{snap.active.id} is {snap.active.outcome.value}")
    if snap.pending_approval:
        return Ruling(Verdict.SKIP, Reason.APPROVAL, "waiting for approval")
    if snap.blocked and trigger is Trigger.AUTO:
        return Ruling(Verdict.SKIP, Reason.PRECONDITION, snap.blocked)
    attempts, reopen = snap.attempts, False
    if snap.status is IncidentStatus.ESCALATED:
        since = now - (snap.escalated_at if snap.escalated_at is not None else now)
        if since < guards.failure_memory:
            return Ruling(
                Verdict.SKIP,
                Reason.FAILED_BEFORE,
                f"escalated {since:.0f}s ago; not retried automatically for {guards.failure_memory:.0f}s",
            )
        attempts, reopen = 0, True  # the failure is old news: try again, from a fresh count
    elif snap.escalated_at is not None and 0 <= now - snap.escalated_at < guards.failure_memory:
        # Resolved since (by a human, or it went quiet) and back: what failed then would fail again.
        since = now - snap.escalated_at
        return Ruling(
            Verdict.ESCALATE,
            Reason.FAILED_BEFORE,
            f"the same fault was escalated {since:.0f}s ago and is back; not retried automatically"
            f" for {guards.failure_memory:.0f}s",
        )
    ruling = _limits(snap, pattern, guards, now, trigger, attempts)
    if probed and ruling.verdict in (Verdict.ACT, Verdict.ASK):
        ruling = _confirming(ruling, found)
    if reopen:
        return replace(ruling, reopen=True)
    return ruling


def _confirming(ruling: Ruling, found: Confirmation | None) -> Ruling:
    """Probe before acting or asking; once probed, the act or ask says what the probe found."""
    if found is None:
        return Ruling(Verdict.SKIP, Reason.CONFIRMING, "probing the fault before anything runs", probe=True)
    said = f"{found.status.value}: {found.detail}"
    return replace(ruling, detail=f"{said}; {ruling.detail}" if ruling.detail else said)


def _limits(
    snap: IncidentSnapshot, pattern: Pattern, guards: Guardrails, now: float, trigger: Trigger, attempts: int
) -> Ruling:
    """Steps 9-14, once the incident may be fixed at all."""
    if attempts >= pattern.max_attempts:
        return Ruling(Verdict.ESCALATE, Reason.MAX_ATTEMPTS, f"{attempts} attempts made")
    if snap.last_fix_at is not None and _cooling(snap, pattern, now, trigger):
        ago = now - snap.last_fix_at
        # A clock stepped back makes the last fix look future: still cooling down, said plainly.
        when = f"{ago:.0f}s ago" if ago >= 0 else "in the future (the clock went back)"
        return Ruling(Verdict.SKIP, Reason.COOLDOWN, f"last fix {when}")
    if snap.fixes_last_hour >= guards.fix_budget_per_hour:
        return Ruling(Verdict.SKIP, Reason.BUDGET, f"{guards.fix_budget_per_hour} fixes in the last hour")
    if snap.breaker_open:
        return Ruling(Verdict.NOTIFY, Reason.CIRCUIT_OPEN, "circuit breaker open after repeated failures")
    if pattern.approval is Approval.ASK and trigger is not Trigger.APPROVED:
        return Ruling(Verdict.ASK, Reason.APPROVAL, "")
    p, at = snap.priority, guards.ask_at
    if p is not None and at is not None and p.rank <= at.rank and trigger is not Trigger.APPROVED:
        return Ruling(Verdict.ASK, Reason.PRIORITY, f"a {p.value} incident: triage.ask_at is {at.value}")
    return Ruling(Verdict.ACT, Reason.OK, describe(pattern, snap.subject))


def _cooling(snap: IncidentSnapshot, pattern: Pattern, now: float, trigger: Trigger) -> bool:
    """Whether the cooldown holds this automatic match back.

    It does not after a fix that applied and then did not hold (fewer than
    ``FLAPPING_AFTER`` times in a row): only a second try tells a one-off
    from a service that keeps dying, and a cooldown (300 s for a restart)
    would stop that try, so the flapping escalation could never come and
    nobody would be told. The retry still passes max attempts (checked
    before), the budget and the breaker (after); once it too does not hold,
    ``after_failure`` escalates (flapping) and the incident stops here.
    """
    if trigger is not Trigger.AUTO or snap.last_fix_at is None or now - snap.last_fix_at >= pattern.cooldown:
        return False
    return not 0 < snap.unheld < FLAPPING_AFTER


def shadowed(ruling: Ruling, pattern: Pattern, subject: Subject) -> Ruling:
    """A shadow pattern never acts, asks, probes, escalates or reopens: it says what it would have done."""
    chain = describe(pattern, subject)
    if ruling.probe:
        return Ruling(Verdict.SKIP, Reason.SHADOW, f"would act once a probe confirms the fault: {chain}")
    if ruling.verdict is Verdict.ACT:
        return Ruling(Verdict.SKIP, Reason.SHADOW, f"would act: {ruling.detail or chain}")
    if ruling.verdict is Verdict.ASK:
        why = f" ({ruling.reason.value}{': ' + ruling.detail if ruling.detail else ''})"
        return Ruling(Verdict.SKIP, Reason.SHADOW, f"would ask for approval to run {chain}{why}")
    said = f": {ruling.detail}" if ruling.detail else ""
    return Ruling(Verdict.SKIP, Reason.SHADOW, f"would {ruling.verdict.value} ({ruling.reason.value}){said}")


def after_failure(facts: FailureFacts, pattern: Pattern) -> Ruling | None:
    """ESCALATE (with why) when a failed or undone fix means a human is needed; None to let it be retried."""
    if facts.status is IncidentStatus.ESCALATED:
        return None  # already with a human: said once
    if facts.hostile:
        return Ruling(Verdict.ESCALATE, Reason.HOSTILE_INPUT, facts.hostile)
    if facts.unheld >= FLAPPING_AFTER:
        return Ruling(
            Verdict.ESCALATE, Reason.FLAPPING, f"the fix held only briefly {facts.unheld} times in a row (flapping)"
        )
    if facts.attempts >= pattern.max_attempts:
        return Ruling(
            Verdict.ESCALATE,
            Reason.MAX_ATTEMPTS,
            f"{facts.attempts} attempt{'' if facts.attempts == 1 else 's'} failed",
        )
    return None


FLAPPING_AFTER = 2
"""Undone on recurrence this many times in a row: the fix works for a moment and the fault comes back."""
