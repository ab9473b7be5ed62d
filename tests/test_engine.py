"""The decision chain and fix execution, in process, on an injected clock.

Real SQLite, real subprocesses for the actions; only time is faked so the
windows (threshold, cooldown, verify, budget, approval TTL) take no wall time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.bot_rig import make_healer
from support.engine import build, feed, pat, reasons, run_fix, run_jobs

from healer.app.reports import explain_text, history_text
from healer.core.enums import (
    ApprovalState,
    AuditKind,
    IncidentStatus,
    Outcome,
    Reason,
    SettleStatus,
    SourceName,
    Verdict,
)
from healer.core.jobs import FixJob, UndoJob
from healer.core.records import Event
from healer.engine.ingest import SAMPLE
from healer.store.reads import event_counts, incident_story


def test_threshold_then_act_then_verify_window_success(tmp_path: Path) -> None:
    engine, clock = build(tmp_path, [pat(threshold={"count": 3, "window": 60})])
    assert feed(engine, "BOOM a").jobs == []
    clock.advance(100)  # the first match ages out of the window
    assert feed(engine, "BOOM a", "BOOM a").jobs == []
    res = feed(engine, "BOOM a")
    assert [type(j) for j in res.jobs] == [FixJob]
    attempt = run_fix(engine, res)
    assert attempt.outcome is Outcome.VERIFYING
    assert reasons(engine) == [("skip", "threshold", 3), ("act", "ok", 1)]
    clock.advance(11)
    assert engine.finalize_due() == [attempt.id]
    assert engine.store.attempts()[0].outcome is Outcome.SUCCEEDED
    assert engine.store.incidents()[0].status is IncidentStatus.FIXED


@pytest.mark.parametrize("cooldown", [0, 300])
def test_recurrence_inside_verify_window_fails_the_fix(tmp_path: Path, cooldown: int) -> None:
    engine, clock = build(tmp_path, [pat(cooldown=cooldown)])
    run_jobs(engine, feed(engine, "BOOM a"))
    clock.advance(6)  # past the fix's grace (engine.verify_grace, 5s): this line is new evidence
    res = feed(engine, "BOOM a")
    # Only the undo: no new fix may start on the target while the old one is rolled back.
    assert [type(j) for j in res.jobs] == [UndoJob]
    assert reasons(engine)[-1][:2] == ("skip", "in_progress")
    assert engine.store.held_locks() == ["command:ok"]
    run_jobs(engine, res)
    a = engine.store.attempts()[0]
    assert a.outcome is Outcome.FAILED and "recurred" in a.detail
    assert engine.store.held_locks() == []
    assert engine.finalize_due() == []  # a failed fix is never turned into a success later
    clock.advance(1)
    assert reasons(engine)[-1][1] == "in_progress"
    feed(engine, "BOOM a")
    # Even within a cooldown: a fix that took effect and did not hold gets one more try at once, so that
    # a second unheld fix can tell flapping (escalate) from a one-off (policy._cooling).
    assert reasons(engine)[-1][1] == "ok"


def test_failing_fix_escalates_after_max_attempts_and_trips_breaker(tmp_path: Path) -> None:
    engine, clock = build(
        tmp_path,
        [pat(remediation=[{"action": "command", "params": {"command": "fail"}}], max_attempts=2)],
        engine={"breaker_failures": 2},
    )
    for _ in range(2):
        a = run_fix(engine, feed(engine, "BOOM a"))
        assert a.outcome is Outcome.FAILED
        clock.advance(1)
    inc = engine.store.incidents()[0]
    assert inc.status is IncidentStatus.ESCALATED and inc.attempts == 2
    assert engine.breaker_open(clock.now())
    [tripped] = engine.store.audit_entries(AuditKind.BREAKER_TRIPPED)
    assert tripped.detail["until"] == clock.now() - 1 + 1800  # tripped by the second failure, 1 s ago
    for _ in range(5):
        assert feed(engine, "BOOM a").jobs == []
    assert len(engine.store.attempts()) == 2
    assert ("escalate", "max_attempts", 1) in reasons(engine)
    # Another incident while the breaker is open: notify only.
    feed(engine, "BOOM other")
    assert reasons(engine)[-1][:2] == ("notify", "circuit_open")


def test_kill_switch_dry_run_budget_never(tmp_path: Path) -> None:
    engine, _ = build(tmp_path, [pat(), pat("quiet", regex="QUIET", approval="never", remediation=None)],
                      kill_switch=True)  # fmt: skip
    assert feed(engine, "BOOM a", "QUIET").jobs == []
    assert sorted(r[:2] for r in reasons(engine)) == [("notify", "notify_only"), ("skip", "kill_switch")]

    engine, _ = build(tmp_path / "dry", [pat()], dry_run=True)
    feed(engine, "BOOM a")
    [d] = engine.store.decisions()
    assert d.reason.value == "dry_run" and "would run command(command=ok)" in d.detail

    engine, _ = build(tmp_path / "budget", [pat()], engine={"fix_budget_per_hour": 1})
    run_jobs(engine, feed(engine, "BOOM a"))
    assert feed(engine, "BOOM b").jobs == []
    assert reasons(engine)[-1][:2] == ("skip", "budget")


def test_approval_once_and_expiry(tmp_path: Path) -> None:
    engine, clock = build(tmp_path, [pat(approval="ask")], engine={"approval_ttl": 60})
    res = feed(engine, "BOOM a")
    assert res.jobs == [] and [n.kind.value for n in res.notices] == ["incident", "approval"]
    d = res.decisions[0]
    settled = engine.settle_approval(d.id, True, "telegram:1")
    job = settled.job
    assert settled.status is SettleStatus.OK and job is not None and job.groups["what"] == "a"
    attempt = engine.run_job(job)
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING
    again = engine.settle_approval(d.id, True, "telegram:1")
    assert again.status is SettleStatus.DONE and again.job is None
    feed(engine, "BOOM b")
    d2 = engine.store.decisions()[0]
    clock.advance(61)
    assert engine.settle_approval(d2.id, True, "telegram:1").status is SettleStatus.EXPIRED
    assert len(engine.store.attempts()) == 1
    results = [e.detail["result"] for e in engine.store.audit_entries(AuditKind.APPROVAL)]
    assert results == ["expired", "done", "ok"]


def test_storm_is_one_incident_one_decision_row(tmp_path: Path) -> None:
    engine, _ = build(tmp_path, [pat(cooldown=3600)])
    res = feed(engine, *[f"2026-11-22 10:00:{i % 60:02d} ERROR req={i} BOOM a" for i in range(10_000)])
    assert len(res.jobs) == 1
    [inc] = engine.store.incidents()
    assert inc.count == 10_000
    assert reasons(engine) == [("act", "ok", 10_000)]
    # A bounded sample is stored; its last row stands for the lines elided before it, and every line counts.
    messages = engine.store.event_messages()
    assert len(messages) == SAMPLE
    assert messages[:2] == ["2026-11-22 10:00:00 ERROR req=0 BOOM a", "2026-11-22 10:00:01 ERROR req=1 BOOM a"]
    assert messages[-1] == "2026-11-22 10:00:39 ERROR req=9999 BOOM a"
    assert [c.events for c in event_counts(engine.store, 0.0)] == [10_000]
    story = incident_story(engine.store, inc.id)
    assert story is not None and story.events[-1].elided == 10_000 - SAMPLE
    text = explain_text(make_healer(engine).explain(inc.id))
    assert f"and {10_000 - SAMPLE} more lines like it just before, in the same batch (file offsets " in text


def test_one_fault_three_sources_one_incident_one_fix(tmp_path: Path) -> None:
    redis = pat(
        "redis-down", regex=r"(?:Error 111 connecting to [a-z0-9.]+:6379|RedisDown)", group_by=[],
        cooldown=600, examples=["RedisDown"],
    )  # fmt: skip
    engine, clock = build(tmp_path, [redis])
    msg = "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection refused."
    jobs = feed(engine, f"2026-11-22 ERROR app: {msg}").jobs
    for j in jobs:
        engine.run_job(j)
    clock.advance(6)  # past the fix's grace: what arrives now (no own time) is a recurrence
    jobs = engine.ingest_events([Event(SourceName.SENTRY, "app", msg, 1.0, source_id="issue-1:ev-1")]).jobs
    jobs += engine.ingest_events(
        [
            Event(
                SourceName.ALERTMANAGER,
                "redis",
                "RedisDown on host1",
                1.0,
                fields={"alertname": "RedisDown"},
                source_id="fp1:2026-11-22T10:00:00Z",
            )
        ]  # fmt: skip
    ).jobs
    assert [type(j) for j in jobs] == [UndoJob]  # recurrence inside the verify window, not a second fix
    [inc] = engine.store.incidents()
    assert inc.sources == ("alertmanager", "file", "sentry") and inc.count == 3
    assert history_text(make_healer(engine).history()).startswith("Fix attempts: 1 total")
    # A re-delivery of the same alert is dropped; a resolved alert closes the incident.
    engine.ingest_events(
        [Event(SourceName.ALERTMANAGER, "redis", "RedisDown", 1.0, source_id="fp1:2026-11-22T10:00:00Z")]
    )
    assert engine.store.incidents()[0].count == 3
    resolved = Event(
        SourceName.ALERTMANAGER, "redis", "RedisDown", 2.0, source_id="fp1:2026-11-22T10:00:00Z", resolved=True
    )
    engine.ingest_events([resolved])
    assert engine.store.incidents()[0].status is IncidentStatus.RESOLVED


def test_crash_recovery_settles_running_attempts(tmp_path: Path) -> None:
    engine, _ = build(tmp_path, [pat()])
    res = feed(engine, "BOOM a")
    job = res.jobs[0]
    assert isinstance(job, FixJob)
    aid = engine.store.start_attempt(job.incident_id, job.decision.id, ["command"], ["command:ok"], 1.0)
    assert aid is not None
    # Killed before any step checkpointed: recovery has nothing to verify, so it is failed, and the lock is freed.
    assert engine.recover() == [(aid, Outcome.FAILED)]
    [recovered] = engine.store.audit_entries(AuditKind.FIX_RECOVERED)
    assert recovered.detail == {"attempt": aid, "outcome": "failed"}
    assert engine.store.held_locks() == []


def test_chain_pip_install_then_failing_restart_is_rolled_back(tmp_path: Path, venv_python: Path,
                                                               wheelhouse: Path) -> None:  # fmt: skip
    import subprocess

    chain = pat(
        "missing-module", regex=r"No module named '(?P<module>[A-Za-z0-9_.]+)'",
        remediation=[{"action": "pip_install", "params": {"module": "{module}"}},
                     {"action": "restart", "params": {"service": "app"}}],
        examples=["No module named 'x'"],
    )  # fmt: skip
    engine, _ = build(
        tmp_path,
        [chain],
        actions={
            "command": {"commands": {"ok": ["true"]}},
            "pip_install": {"python": str(venv_python), "allowed": ["healer-demo-pkg"],
                            "packages": {"healer_demo_pkg": "healer-demo-pkg"}, "no_index": True,
                            "find_links": [str(wheelhouse)]},
            "restart": {"manager": "command", "units": {"app": {"argv": ["false"], "status_argv": ["false"]}}},
        },
    )  # fmt: skip
    attempt = run_fix(engine, feed(engine, "ModuleNotFoundError: No module named 'healer_demo_pkg'"))
    assert attempt.outcome is Outcome.ROLLED_BACK, attempt
    assert [(s.action, s.outcome.value) for s in attempt.steps] == [
        ("pip_install", "succeeded"), ("restart", "failed"), ("pip_install", "rolled_back"),
    ]  # fmt: skip
    probe = subprocess.run([str(venv_python), "-c", "import healer_demo_pkg"], capture_output=True)
    assert probe.returncode != 0, "the package should have been uninstalled again"


def test_a_fault_fixed_every_week_is_not_escalated(tmp_path: Path) -> None:
    engine, clock = build(tmp_path, [pat(max_attempts=2)])
    for week in range(4):
        a = run_fix(engine, feed(engine, "BOOM a"))
        assert a is not None and a.outcome is Outcome.VERIFYING, (week, reasons(engine))
        clock.advance(20)
        engine.finalize_due()
        assert engine.store.incidents()[0].status is IncidentStatus.FIXED
        clock.advance(7 * 86400)
    assert not any(r[0] == "escalate" for r in reasons(engine))


def test_budget_holds_within_one_batch_and_one_fix_request(tmp_path: Path) -> None:
    engine, _ = build(tmp_path, [pat(group_by=["what"])], engine={"fix_budget_per_hour": 2})
    res = feed(engine, "BOOM a", "BOOM b", "BOOM c", "BOOM d", "BOOM e")
    assert len(res.jobs) == 2
    assert sum(1 for r in reasons(engine) if r[1] == "budget") == 3
    assert engine.fix_open("cli").jobs == []


def test_escalation_expires_after_failure_memory(tmp_path: Path) -> None:
    engine, clock = build(
        tmp_path,
        [pat(remediation=[{"action": "command", "params": {"command": "fail"}}], max_attempts=1)],
        engine={"failure_memory": 3600},
    )
    run_jobs(engine, feed(engine, "BOOM a"))
    assert engine.store.incidents()[0].status is IncidentStatus.ESCALATED
    clock.advance(60)
    assert feed(engine, "BOOM a").jobs == []
    assert reasons(engine)[-1][1] == "failed_before"
    clock.advance(3600)
    assert len(feed(engine, "BOOM a").jobs) == 1  # the failure is old news: one fresh try


def test_kill_switch_does_not_consume_an_approval(tmp_path: Path) -> None:

    engine, _ = build(tmp_path, [pat(approval="ask")])
    d = feed(engine, "BOOM a").decisions[0]
    on = engine.settings.model_copy(update={"kill_switch": True})
    engine.reconfigure(on, list(engine.by_id.values()))
    refused = engine.settle_approval(d.id, True, "telegram:1")
    assert refused.status is SettleStatus.KILL_SWITCH and refused.job is None
    engine.reconfigure(on.model_copy(update={"kill_switch": False}), list(engine.by_id.values()))
    settled = engine.settle_approval(d.id, True, "telegram:1")
    assert settled.status is SettleStatus.OK and settled.job is not None


def test_approved_fix_still_obeys_the_budget(tmp_path: Path) -> None:
    engine, _ = build(tmp_path, [pat(approval="ask", group_by=["what"])], engine={"fix_budget_per_hour": 1})
    d1, d2 = (feed(engine, f"BOOM {w}").decisions[0] for w in ("a", "b"))
    assert engine.settle_approval(d1.id, True, "u").status is SettleStatus.OK
    blocked = engine.settle_approval(d2.id, True, "u")
    # The front ends render this: the approval went through, the budget stopped the fix, and why.
    assert blocked.status is SettleStatus.BLOCKED and blocked.job is None
    assert blocked.decision is not None
    assert (blocked.decision.verdict, blocked.decision.reason) == (Verdict.SKIP, Reason.BUDGET)
    assert blocked.decision.detail == "1 fixes in the last hour"


def test_failed_commit_does_not_wedge_the_store(tmp_path: Path) -> None:
    import sqlite3

    engine, _ = build(tmp_path, [pat()])
    db = engine.store.db
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE c (pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError):
        with engine.store.tx() as c:
            c.execute("INSERT INTO c VALUES (99)")  # COMMIT fails on the deferred constraint
    assert not db.in_transaction
    feed(engine, "BOOM a")  # the next transaction works
    assert engine.store.incidents()[0].count == 1


def test_set_config_reverts_after_its_time(tmp_path: Path) -> None:
    env = tmp_path / "app.env"
    env.write_text("MODEL=primary\nOTHER=1\n")
    engine, clock = build(
        tmp_path,
        [pat("rate", regex="429 Too Many Requests", examples=["429 Too Many Requests"],
             remediation=[{"action": "set_config", "params": {"file": "app", "key": "MODEL", "value": "fallback"}}])],
        actions={"command": {"commands": {"ok": ["true"]}},
                 "set_config": {"revert_after": "1h",
                                "files": {"app": {"path": str(env), "keys": {"MODEL": ["fallback"]}}}}},
    )  # fmt: skip
    a = run_fix(engine, feed(engine, "HTTPError: 429 Too Many Requests"))
    assert a.outcome is Outcome.VERIFYING and "MODEL=fallback" in env.read_text()
    clock.advance(1800)
    assert engine.due_reverts() == []
    clock.advance(1900)
    assert engine.due_reverts() == [a.id]
    assert env.read_text() == "MODEL=primary\nOTHER=1\n"
    assert engine.due_reverts() == []
    [reverted] = engine.store.audit_entries(AuditKind.FIX_REVERTED)
    assert reverted.detail == {"attempt": a.id, "result": "rolled_back"}


def test_a_fix_that_never_started_does_not_use_the_budget(tmp_path: Path) -> None:
    engine, _ = build(tmp_path, [pat(group_by=["what"])], engine={"fix_budget_per_hour": 2})
    res = feed(engine, "BOOM a", "BOOM b")  # both fixes share the target command:ok
    jobs = [j for j in res.jobs if isinstance(j, FixJob)]
    assert len(jobs) == 2
    engine.store.start_attempt(99, 0, ["command"], ["command:ok"], 0.0)  # someone holds the target
    assert [engine.run_job(j) for j in jobs] == [None, None]
    assert [engine.store.approval_state(j.decision.id) for j in jobs] == [ApprovalState.BUSY] * 2
    assert len(feed(engine, "BOOM c").jobs) == 1  # budget still has room


def test_every_log_line_of_a_fix_names_its_incident_attempt_and_pattern(tmp_path: Path) -> None:
    import structlog
    from structlog.testing import LogCapture

    engine, _ = build(tmp_path, [pat(remediation=[{"action": "command", "params": {"command": "fail"}}])])
    res = feed(engine, "BOOM a")
    cap = LogCapture()
    old = structlog.get_config()
    # capture_logs() would drop merge_contextvars, the processor under test; keep it in front of the capture.
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, cap],
        wrapper_class=structlog.make_filtering_bound_logger(0),  # every level, whatever an earlier test set
    )
    try:
        attempt = run_fix(engine, res)
    finally:
        structlog.configure(**old)
    events = [e["event"] for e in cap.entries]
    # The action's own line (proc_ran) and the failure's notices carry the context too, not only the engine's.
    assert {"fix_started", "proc_ran", "fix_finished", "notice"} <= set(events), events
    for entry in cap.entries:
        assert (entry.get("incident"), entry.get("attempt"), entry.get("pattern")) == (1, attempt.id, "boom"), entry
    assert structlog.contextvars.get_contextvars() == {}  # nothing stays bound after the fix


@pytest.mark.parametrize(
    ("guardrail", "reason", "detail"),
    [
        ("breaker", Reason.CIRCUIT_OPEN, "circuit breaker open after repeated failures"),
        ("in_progress", Reason.IN_PROGRESS, "attempt #1 is running"),
    ],
)
def test_an_approval_blocked_by_a_guardrail_says_which(
    tmp_path: Path, guardrail: str, reason: Reason, detail: str
) -> None:
    engine, clock = build(tmp_path, [pat(approval="ask")])
    d = feed(engine, "BOOM a").decisions[0]
    if guardrail == "breaker":
        with engine.store.tx() as db:
            engine.store.open_breaker(db, clock.now() + 60)
    else:  # a fix on this incident started meanwhile (say from `healer fix` on another host's CLI)
        assert engine.store.start_attempt(d.incident_id, d.id, ["command"], ["command:elsewhere"], clock.now()) == 1
    settled = engine.settle_approval(d.id, True, "telegram:1")
    assert settled.status is SettleStatus.BLOCKED and settled.job is None
    assert settled.decision is not None and (settled.decision.reason, settled.decision.detail) == (reason, detail)
    # The approval is spent: pressing the button again does not retry behind the guardrail's back.
    assert engine.settle_approval(d.id, True, "telegram:1").status is SettleStatus.DONE


def test_a_rejection_runs_nothing_and_settles_the_approval(tmp_path: Path) -> None:
    engine, _ = build(tmp_path, [pat(approval="ask")])
    d = feed(engine, "BOOM a").decisions[0]
    rejected = engine.settle_approval(d.id, False, "telegram:1")
    assert rejected.status is SettleStatus.OK and rejected.job is None
    assert engine.store.approval_state(d.id) is ApprovalState.REJECTED
    assert engine.settle_approval(d.id, True, "telegram:1").status is SettleStatus.DONE
    assert engine.settle_approval(12345, True, "telegram:1").status is SettleStatus.MISSING
    assert engine.store.attempts() == []
