"""The decision chain as a table: pure function, no SQLite, no clock.

Each row is one situation and the ruling a user would read in ``healer
explain``. Rows that set several guardrails at once pin the order of
precedence; the last test checks that every ``Reason`` is reached.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from healer.core.enums import (
    Approval,
    CheckSeverity,
    Confirm,
    IncidentStatus,
    Outcome,
    Priority,
    Reason,
    Severity,
    Trigger,
    Verdict,
)
from healer.engine.policy import (
    ActiveFix,
    FailureFacts,
    Guardrails,
    IncidentSnapshot,
    Ruling,
    Subject,
    after_failure,
    decide,
    gate,
    shadowed,
)
from healer.engine.preconditions import after_checks
from healer.remedy.base import Confirmation
from healer.remedy.preconditions import CheckVerdict
from healer.rules.patterns import Pattern, Step

NOW = 1_700_000_000.0
SUBJECT = Subject(incident_id=4, service="app", groups={"what": "a"})


def pattern(**over: Any) -> Pattern:
    base = Pattern(
        id="boom",
        description="",
        severity=Severity.HIGH,
        regex="BOOM",
        compiled=None,
        steps=(Step("command", {"command": "ok-{what}"}),),
        threshold_count=1,
        threshold_window=60.0,
        cooldown=300.0,
        max_attempts=3,
        approval=Approval.AUTO,
    )
    return dataclasses.replace(base, **over)


def snap(**over: Any) -> IncidentSnapshot:
    return dataclasses.replace(IncidentSnapshot(subject=SUBJECT), **over)


GUARDS = Guardrails(fix_budget_per_hour=2, failure_memory=3600.0)
EVERYTHING_BLOCKS = snap(
    matches_in_window=0,
    active=ActiveFix(7, Outcome.VERIFYING),
    pending_approval=True,
    attempts=9,
    last_fix_at=NOW - 1,
    fixes_last_hour=99,
    breaker_open=True,
)

# (id, snapshot, pattern overrides, guardrail overrides, trigger, verdict, reason, detail)
TABLE: list[tuple[str, IncidentSnapshot, dict[str, Any], dict[str, Any], Trigger, Verdict, Reason, str]] = [
    ("no steps", EVERYTHING_BLOCKS, {"steps": ()}, {"kill_switch": True},
     Trigger.AUTO, Verdict.NOTIFY, Reason.NOTIFY_ONLY, "pattern has no automatic fix"),
    ("approval never", snap(), {"approval": Approval.NEVER}, {},
     Trigger.AUTO, Verdict.NOTIFY, Reason.NOTIFY_ONLY, "pattern has no automatic fix"),
    ("kill switch beats draining and dry run", EVERYTHING_BLOCKS, {},
     {"kill_switch": True, "draining": True, "dry_run": True},
     Trigger.APPROVED, Verdict.SKIP, Reason.KILL_SWITCH, "kill_switch is on in the config"),
    ("draining beats dry run", EVERYTHING_BLOCKS, {}, {"draining": True, "dry_run": True},
     Trigger.AUTO, Verdict.SKIP, Reason.DRAINING, "shutting down"),
    ("dry run says what would run", snap(), {}, {"dry_run": True},
     Trigger.AUTO, Verdict.SKIP, Reason.DRY_RUN, "would run command(command=ok-a)"),
    ("dry run applies every guardrail first", EVERYTHING_BLOCKS, {}, {"dry_run": True},
     Trigger.AUTO, Verdict.SKIP, Reason.IN_PROGRESS, "attempt #7 is verifying"),
    ("dry run applies the threshold", snap(matches_in_window=2), {"threshold_count": 3}, {"dry_run": True},
     Trigger.AUTO, Verdict.SKIP, Reason.THRESHOLD, "2/3 in 60s"),
    ("dry run applies the cooldown", snap(last_fix_at=NOW - 10), {}, {"dry_run": True},
     Trigger.AUTO, Verdict.SKIP, Reason.COOLDOWN, "last fix 10s ago"),
    ("dry run says who would be asked", snap(), {"approval": Approval.ASK}, {"dry_run": True},
     Trigger.AUTO, Verdict.SKIP, Reason.DRY_RUN_ASK, "would ask to run command(command=ok-a)"),
    ("dry run escalates as the daemon would", snap(attempts=3), {}, {"dry_run": True},
     Trigger.AUTO, Verdict.ESCALATE, Reason.MAX_ATTEMPTS, "3 attempts made"),
    ("threshold beats a fix in progress", dataclasses.replace(EVERYTHING_BLOCKS, matches_in_window=2),
     {"threshold_count": 3}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.THRESHOLD, "2/3 in 60s"),
    ("threshold is for automatic matches only", snap(matches_in_window=0), {"threshold_count": 3}, {},
     Trigger.MANUAL, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
    ("in progress beats a pending approval", EVERYTHING_BLOCKS, {}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.IN_PROGRESS, "attempt #7 is verifying"),
    ("pending approval beats max attempts", snap(pending_approval=True, attempts=9), {}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.APPROVAL, "waiting for approval"),
    ("a fix a precondition blocked waits, for automatic matches", snap(blocked="blocked until it clears: x"), {}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.PRECONDITION, "blocked until it clears: x"),
    ("the retry decides a blocked fix again, past threshold and cooldown",
     snap(blocked="x", matches_in_window=0, last_fix_at=NOW - 10), {"threshold_count": 3}, {},
     Trigger.RETRY, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
    ("a pending approval beats a block", snap(pending_approval=True, blocked="x"), {}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.APPROVAL, "waiting for approval"),
    ("escalated recently", snap(status=IncidentStatus.ESCALATED, escalated_at=NOW - 600, attempts=9), {}, {},
     Trigger.MANUAL, Verdict.SKIP, Reason.FAILED_BEFORE,
     "escalated 600s ago; not retried automatically for 3600s"),
    ("resolved since its escalation and back: the same fault failed before",
     snap(status=IncidentStatus.OPEN, escalated_at=NOW - 600, attempts=0), {}, {},
     Trigger.AUTO, Verdict.ESCALATE, Reason.FAILED_BEFORE,
     "the same fault was escalated 600s ago and is back; not retried automatically for 3600s"),
    ("an escalation older than failure_memory is forgotten once resolved",
     snap(status=IncidentStatus.OPEN, escalated_at=NOW - 3601), {}, {},
     Trigger.AUTO, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
    ("max attempts beats cooldown and budget", snap(attempts=3, last_fix_at=NOW - 1, fixes_last_hour=99), {}, {},
     Trigger.AUTO, Verdict.ESCALATE, Reason.MAX_ATTEMPTS, "3 attempts made"),
    ("cooldown beats budget", snap(last_fix_at=NOW - 10, fixes_last_hour=99), {}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.COOLDOWN, "last fix 10s ago"),
    ("clock stepped back still cools down", snap(last_fix_at=NOW + 120), {}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.COOLDOWN, "last fix in the future (the clock went back)"),
    ("a fix that did not hold is retried at once: only a second try tells flapping",
     snap(last_fix_at=NOW - 10, unheld=1), {}, {},
     Trigger.AUTO, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
    ("the retry after a fix that did not hold still spends budget",
     snap(last_fix_at=NOW - 10, unheld=1, fixes_last_hour=2), {}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.BUDGET, "2 fixes in the last hour"),
    ("twice unheld (already escalated by after_failure) waives nothing",
     snap(last_fix_at=NOW - 10, unheld=2), {}, {},
     Trigger.AUTO, Verdict.SKIP, Reason.COOLDOWN, "last fix 10s ago"),
    ("cooldown is for automatic matches only", snap(last_fix_at=NOW - 10), {}, {},
     Trigger.APPROVED, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
    ("budget beats the breaker, even for an approved fix", snap(fixes_last_hour=2, breaker_open=True), {}, {},
     Trigger.APPROVED, Verdict.SKIP, Reason.BUDGET, "2 fixes in the last hour"),
    ("breaker beats asking", snap(breaker_open=True), {"approval": Approval.ASK}, {},
     Trigger.AUTO, Verdict.NOTIFY, Reason.CIRCUIT_OPEN, "circuit breaker open after repeated failures"),
    ("ask", snap(), {"approval": Approval.ASK}, {},
     Trigger.AUTO, Verdict.ASK, Reason.APPROVAL, ""),
    ("a P0 incident asks when triage.ask_at says so", snap(priority=Priority.P0), {}, {"ask_at": Priority.P1},
     Trigger.AUTO, Verdict.ASK, Reason.PRIORITY, "a P0 incident: triage.ask_at is P1"),
    ("a P2 incident does not", snap(priority=Priority.P2), {}, {"ask_at": Priority.P1},
     Trigger.AUTO, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
    ("an approved P0 fix is not asked again", snap(priority=Priority.P0), {}, {"ask_at": Priority.P0},
     Trigger.APPROVED, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
    ("an approved fix is not asked again", snap(), {"approval": Approval.ASK}, {},
     Trigger.APPROVED, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
    ("act", snap(last_fix_at=NOW - 301, attempts=2, fixes_last_hour=1), {}, {},
     Trigger.AUTO, Verdict.ACT, Reason.OK, "command(command=ok-a)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("situation", "facts", "pat_over", "guard_over", "trigger", "verdict", "reason", "detail"),
    TABLE,
    ids=[row[0] for row in TABLE],
)
def test_decision_table(
    situation: str,
    facts: IncidentSnapshot,
    pat_over: dict[str, Any],
    guard_over: dict[str, Any],
    trigger: Trigger,
    verdict: Verdict,
    reason: Reason,
    detail: str,
) -> None:
    ruling = decide(facts, pattern(**pat_over), dataclasses.replace(GUARDS, **guard_over), NOW, trigger)
    assert ruling == Ruling(verdict, reason, detail), situation


# After a fix failed or was undone: does the incident go to a human, and why. First match wins.
AFTER: list[tuple[str, FailureFacts, dict[str, Any], Ruling | None]] = [
    ("hostile input beats flapping and max attempts",
     FailureFacts(IncidentStatus.OPEN, attempts=3, unheld=2, hostile="parameter module refused 'a;b'"), {},
     Ruling(Verdict.ESCALATE, Reason.HOSTILE_INPUT, "parameter module refused 'a;b'")),
    ("hostile input on the first attempt", FailureFacts(IncidentStatus.OPEN, attempts=1, hostile="x"), {},
     Ruling(Verdict.ESCALATE, Reason.HOSTILE_INPUT, "x")),
    ("did not hold twice in a row: flapping, before max attempts",
     FailureFacts(IncidentStatus.OPEN, attempts=2, unheld=2), {},
     Ruling(Verdict.ESCALATE, Reason.FLAPPING, "the fix held only briefly 2 times in a row (flapping)")),
    ("did not hold once: retried", FailureFacts(IncidentStatus.OPEN, attempts=1, unheld=1), {}, None),
    ("last attempt used", FailureFacts(IncidentStatus.OPEN, attempts=3), {},
     Ruling(Verdict.ESCALATE, Reason.MAX_ATTEMPTS, "3 attempts failed")),
    ("attempts left", FailureFacts(IncidentStatus.OPEN, attempts=2), {}, None),
    ("already escalated: said once", FailureFacts(IncidentStatus.ESCALATED, attempts=5, unheld=3, hostile="x"), {},
     None),
    ("max attempts of the pattern", FailureFacts(IncidentStatus.OPEN, attempts=1), {"max_attempts": 1},
     Ruling(Verdict.ESCALATE, Reason.MAX_ATTEMPTS, "1 attempt failed")),
]  # fmt: skip


@pytest.mark.parametrize(("situation", "facts", "pat_over", "ruling"), AFTER, ids=[row[0] for row in AFTER])
def test_after_failure_table(
    situation: str, facts: FailureFacts, pat_over: dict[str, Any], ruling: Ruling | None
) -> None:
    assert after_failure(facts, pattern(**pat_over)) == ruling, situation


def verdict(label: str, ok: bool, severity: CheckSeverity = CheckSeverity.CRITICAL) -> CheckVerdict:
    return CheckVerdict(label, severity, ok, "on 'hotfix'" if not ok else "fine")


OK_LOCK = verdict("no_file(/srv/app/DEPLOYING)", True)
BRANCH = verdict("git_branch_is(app, main)", False)
LOAD = verdict("max_load(< 4)", False, CheckSeverity.WARNING)
PROTECTED = "git_sync /srv/app: the pull changes protected paths: .github/workflows/ci.yml"
# What the host probes mean for a decided fix: (id, verdicts, reviews, trigger, ruling). None: it runs.
CHECKS: list[tuple[str, list[CheckVerdict], list[str], Trigger, Ruling | None, str]] = [
    ("every check passes", [OK_LOCK], [], Trigger.AUTO, None, ""),
    ("a critical failure blocks, and says which", [OK_LOCK, BRANCH, LOAD], [PROTECTED], Trigger.AUTO,
     Ruling(Verdict.SKIP, Reason.PRECONDITION, "blocked until it clears: git_branch_is(app, main): on 'hotfix'"), ""),
    ("a critical failure blocks an approved fix too", [BRANCH], [], Trigger.APPROVED,
     Ruling(Verdict.SKIP, Reason.PRECONDITION, "blocked until it clears: git_branch_is(app, main): on 'hotfix'"), ""),
    ("a warning asks", [OK_LOCK, LOAD], [], Trigger.AUTO,
     Ruling(Verdict.ASK, Reason.PRECONDITION, "precondition warnings: max_load(< 4): on 'hotfix'"), ""),
    ("a warning asks a retried fix too", [LOAD], [], Trigger.RETRY,
     Ruling(Verdict.ASK, Reason.PRECONDITION, "precondition warnings: max_load(< 4): on 'hotfix'"), ""),
    ("a protected path asks, with the warnings", [LOAD], [PROTECTED], Trigger.MANUAL,
     Ruling(Verdict.ASK, Reason.PROTECTED_PATHS, PROTECTED + "; precondition warnings: max_load(< 4): on 'hotfix'"),
     ""),
    ("an approved fix is not asked again for what its approval listed", [LOAD], [PROTECTED], Trigger.APPROVED,
     None, f"boom wants to run x; {PROTECTED}\nPreconditions:\n  FAILED max_load(< 4) [warning]: on 'hotfix'"),
    ("an approval given before the probes (approval: ask) asks again with them", [LOAD], [], Trigger.APPROVED,
     Ruling(Verdict.ASK, Reason.PRECONDITION, "precondition warnings: max_load(< 4): on 'hotfix'"),
     "boom wants to run command(command=ok-a)"),
    ("a protected path the approval did not list asks again", [OK_LOCK], [PROTECTED], Trigger.APPROVED,
     Ruling(Verdict.ASK, Reason.PROTECTED_PATHS, PROTECTED),
     "boom wants to run x; git_sync /srv/app: the pull changes protected paths: app.service"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("situation", "verdicts", "reviews", "trigger", "ruling", "approved"), CHECKS, ids=[row[0] for row in CHECKS]
)
def test_after_checks_table(
    situation: str,
    verdicts: list[CheckVerdict],
    reviews: list[str],
    trigger: Trigger,
    ruling: Ruling | None,
    approved: str,
) -> None:
    assert after_checks(verdicts, reviews, trigger, approved) == ruling, situation


DOWN = Confirmation(Confirm.CONFIRMED, "redis is not running")
UP = Confirmation(Confirm.REFUTED, "redis is RUNNING: the client's configuration is at fault")
UNSURE = Confirmation(Confirm.UNKNOWN, "supervisorctl did not answer")
STUCK = Confirmation(Confirm.STUCK, "/srv/shop: a merge is in progress with conflicts in app.py")
CONFIRM = {"confirm": True, "threshold_count": 3}
PROBE = Ruling(Verdict.SKIP, Reason.CONFIRMING, "probing the fault before anything runs", probe=True)

# A confirm: pattern: the probe's held verdict replaces the threshold (automatic matches only).
CONFIRM_TABLE: list[tuple[str, IncidentSnapshot, dict[str, Any], Trigger, Ruling]] = [
    ("no verdict yet: probe instead of counting lines", snap(matches_in_window=1), CONFIRM,
     Trigger.AUTO, PROBE),
    ("no verdict yet, an ask pattern: probe before asking", snap(), {**CONFIRM, "approval": Approval.ASK},
     Trigger.AUTO, PROBE),
    ("refuted: notify only, before anything else is looked at",
     dataclasses.replace(EVERYTHING_BLOCKS, confirmation=UP), CONFIRM,
     Trigger.AUTO, Ruling(Verdict.NOTIFY, Reason.REFUTED, UP.detail)),
    ("stuck: escalate at once, before threshold, cooldown and asking",
     snap(matches_in_window=0, last_fix_at=NOW - 10, confirmation=STUCK), {**CONFIRM, "approval": Approval.ASK},
     Trigger.AUTO, Ruling(Verdict.ESCALATE, Reason.NEEDS_HUMAN, f"a human is needed: {STUCK.detail}")),
    ("stuck, but a fix is in progress: that settles first", snap(active=ActiveFix(7, Outcome.VERIFYING),
     confirmation=STUCK), CONFIRM, Trigger.AUTO, Ruling(Verdict.SKIP, Reason.IN_PROGRESS, "attempt #7 is verifying")),
    ("stuck and already escalated: said once", snap(status=IncidentStatus.ESCALATED, escalated_at=NOW - 5,
     confirmation=STUCK), CONFIRM, Trigger.AUTO,
     Ruling(Verdict.SKIP, Reason.FAILED_BEFORE, "escalated 5s ago; not retried automatically for 3600s")),
    ("a probe under way: the next line waits for it", snap(probing=True), CONFIRM,
     Trigger.AUTO, Ruling(Verdict.SKIP, Reason.CONFIRMING, "a probe is checking the fault")),
    ("confirmed: act at the first line, saying why", snap(matches_in_window=1, confirmation=DOWN), CONFIRM,
     Trigger.AUTO, Ruling(Verdict.ACT, Reason.OK, "confirmed: redis is not running; command(command=ok-a)")),
    ("confirmed, an ask pattern: ask, saying why", snap(confirmation=DOWN), {**CONFIRM, "approval": Approval.ASK},
     Trigger.AUTO, Ruling(Verdict.ASK, Reason.APPROVAL, "confirmed: redis is not running")),
    ("confirmed still cools down", snap(confirmation=DOWN, last_fix_at=NOW - 10), CONFIRM,
     Trigger.AUTO, Ruling(Verdict.SKIP, Reason.COOLDOWN, "last fix 10s ago")),
    ("unknown: the threshold counts after all", snap(matches_in_window=1, confirmation=UNSURE), CONFIRM,
     Trigger.AUTO, Ruling(Verdict.SKIP, Reason.THRESHOLD, "supervisorctl did not answer; 1/3 in 60s")),
    ("unknown and the threshold met: act", snap(matches_in_window=3, confirmation=UNSURE), CONFIRM,
     Trigger.AUTO, Ruling(Verdict.ACT, Reason.OK, "unknown: supervisorctl did not answer; command(command=ok-a)")),
    ("an operator's fix errors is not probed", snap(confirmation=UP), CONFIRM,
     Trigger.MANUAL, Ruling(Verdict.ACT, Reason.OK, "command(command=ok-a)")),
    ("without confirm: a held verdict means nothing", snap(matches_in_window=1, confirmation=UP),
     {"threshold_count": 3}, Trigger.AUTO, Ruling(Verdict.SKIP, Reason.THRESHOLD, "1/3 in 60s")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("situation", "facts", "pat_over", "trigger", "ruling"), CONFIRM_TABLE, ids=[row[0] for row in CONFIRM_TABLE]
)
def test_confirm_table(
    situation: str, facts: IncidentSnapshot, pat_over: dict[str, Any], trigger: Trigger, ruling: Ruling
) -> None:
    assert decide(facts, pattern(**pat_over), GUARDS, NOW, trigger) == ruling, situation


# A pattern in shadow mode: ruled as if active, recorded as skip (shadow) saying what it would have done.
SHADOW_TABLE: list[tuple[str, IncidentSnapshot, dict[str, Any], str]] = [
    ("it would act: says the chain", snap(), {}, "would act: command(command=ok-a)"),
    ("it would ask: says the chain and why", snap(), {"approval": Approval.ASK},
     "would ask for approval to run command(command=ok-a) (approval)"),
    ("it would probe first: says so, never probes", snap(), CONFIRM,
     "would act once a probe confirms the fault: command(command=ok-a)"),
    ("it would escalate: never escalates", snap(attempts=3), {}, "would escalate (max_attempts): 3 attempts made"),
    ("below its threshold: says the count", snap(matches_in_window=1), {"threshold_count": 3},
     "would skip (threshold): 1/3 in 60s"),
    ("notify only: still never pages", snap(), {"approval": Approval.NEVER},
     "would notify (notify_only): pattern has no automatic fix"),
]  # fmt: skip


@pytest.mark.parametrize(("situation", "facts", "pat_over", "detail"), SHADOW_TABLE, ids=[r[0] for r in SHADOW_TABLE])
def test_shadow_table(situation: str, facts: IncidentSnapshot, pat_over: dict[str, Any], detail: str) -> None:
    p = pattern(**pat_over)
    ruled = shadowed(decide(facts, p, GUARDS, NOW, Trigger.AUTO), p, SUBJECT)
    assert ruled == Ruling(Verdict.SKIP, Reason.SHADOW, detail), situation
    assert not ruled.probe and not ruled.reopen


def test_every_reason_is_reached_by_the_table() -> None:
    after = {row[3].reason for row in AFTER if row[3] is not None}
    checks = {row[4].reason for row in CHECKS if row[4] is not None}
    confirm = {row[4].reason for row in CONFIRM_TABLE}
    shadow = {Reason.SHADOW} if SHADOW_TABLE else set()
    # TARGET_BUSY and CANNOT_RUN come from the engine reading the host, never the policy: test_outcome_notices.py;
    # a refused rehearsal is recorded by the fix pool (engine.fixes.rehearse, tests/test_replay.py).
    engine_only = {Reason.TARGET_BUSY, Reason.CANNOT_RUN, Reason.DRY_RUN_REFUSED}
    assert {row[6] for row in TABLE} | after | checks | confirm | shadow == set(Reason) - engine_only


def test_an_old_escalation_is_reopened_with_a_fresh_count() -> None:
    old = snap(status=IncidentStatus.ESCALATED, escalated_at=NOW - 3600, attempts=9)
    assert decide(old, pattern(), GUARDS, NOW, Trigger.AUTO) == Ruling(
        Verdict.ACT, Reason.OK, "command(command=ok-a)", reopen=True
    )
    # Reopened, but the other guardrails still apply to the fresh try.
    busy = dataclasses.replace(old, fixes_last_hour=2)
    assert decide(busy, pattern(), GUARDS, NOW, Trigger.AUTO) == Ruling(
        Verdict.SKIP, Reason.BUDGET, "2 fixes in the last hour", reopen=True
    )


def test_gate_rules_without_store_facts_and_agrees_with_decide() -> None:
    """The guardrails reader skips the store when ``gate`` already ruled; both must say the same."""
    guard_overs: list[dict[str, Any]] = [{"kill_switch": True}, {"draining": True}]
    for guard_over in guard_overs:
        guards = dataclasses.replace(GUARDS, **guard_over)
        early = gate(SUBJECT, pattern(), guards)
        assert early is not None
        assert early == decide(EVERYTHING_BLOCKS, pattern(), guards, NOW, Trigger.AUTO)
    assert gate(SUBJECT, pattern(), GUARDS) is None
    # Dry run: gate says nothing may run (a pasted line's answer); decide goes on to what would have happened.
    dry = dataclasses.replace(GUARDS, dry_run=True)
    ruled = gate(SUBJECT, pattern(), dry)
    assert ruled is not None and ruled.reason is Reason.DRY_RUN
    assert decide(EVERYTHING_BLOCKS, pattern(), dry, NOW, Trigger.AUTO).reason is Reason.IN_PROGRESS
