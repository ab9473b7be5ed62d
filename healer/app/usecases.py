"""The use cases every front end shares: the ``Healer`` facade.

The CLI and the Telegram bot both call these methods and render what they
return with ``reports.py``, so they cannot drift apart. The daemon builds
one facade over its engine and store; the CLI builds one per command.

Guardrails: the kill switch and dry run are judged here, once, for the two
operator actions that would run fixes ("fix errors" and Approve), before the
engine is asked and before an approval is consumed; every other guardrail
(budget, breaker, cooldown, a fix in progress) is the engine's decision, and
its recorded reason is what the front ends show.

Threads: the read use cases may run on any thread. ``request_fixes`` and
``decide_settle`` record decisions, so the daemon runs them on its single
ingest executor (serialised with ingestion); ``run_fixes`` and
``finish_settle`` wait for the fix pool and must not run there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import BinaryIO

from healer.app import health as host
from healer.app import lifecycle
from healer.app.ports import Rules, RunJobs
from healer.app.results import (
    ErrorSummary,
    ExplainResult,
    FixReport,
    HealthResult,
    HistoryResult,
    JobOutcome,
    LineExplanation,
    LineHit,
    RejectedFile,
    ReplayReport,
    SettleReport,
    StatusResult,
    Would,
)
from healer.core.clock import Clock
from healer.core.enums import (
    Approval,
    ApprovalState,
    AuditKind,
    PatternMode,
    Reason,
    SettleStatus,
    SourceName,
)
from healer.core.jobs import FixJob, Job
from healer.core.records import FixAttempt, Incident
from healer.engine.engine import Engine
from healer.engine.guardrails import guardrails
from healer.engine.policy import Subject, gate
from healer.engine.triage import Triage, incident_triage
from healer.remedy.base import render
from healer.rules.patterns import Pattern
from healer.settings.schema import Settings
from healer.store import reads
from healer.store.db import Store

# What a pasted line would get when the policy's gate already rules, in the operator's words.
_GATE_WOULD = {
    Reason.NOTIFY_ONLY: (Would.NOTIFY, "notify only: the pattern has no automatic fix"),
    Reason.KILL_SWITCH: (Would.REFUSE, "the kill switch is on"),
    Reason.DRAINING: (Would.REFUSE, "healer is shutting down"),
    Reason.DRY_RUN: (Would.REFUSE, "dry run is on: healer only records what it would run"),
}

EXPLAIN_MAX_CHARS = 4096  # a pasted "line" is matched on its first 4 KiB, as a chat message can be long


class Healer:
    def __init__(
        self,
        rules: Rules,
        store: Store,
        engine: Engine | Callable[[], Engine],
        clock: Clock,
        run_jobs: RunJobs,
    ) -> None:
        """``engine`` may be a factory: the CLI's read-only commands never compile the matcher (review D15)."""
        self._rules = rules
        self.store = store
        self._engine = engine
        self.clock = clock
        self._run_jobs = run_jobs

    @property
    def engine(self) -> Engine:
        if not isinstance(self._engine, Engine):
            self._engine = self._engine()
        return self._engine

    @property
    def settings(self) -> Settings:
        return self._rules().settings

    def _patterns(self) -> dict[str, Pattern]:
        return {p.id: p for p in self._rules().patterns}

    def _breaker_until(self, now: float) -> float | None:
        until = self.store.breaker_open_until()
        return until if until is not None and until > now else None

    def audit(self, kind: AuditKind, actor: str, detail: Mapping[str, object]) -> None:
        """Record what an operator asked for or was refused (front ends audit through here)."""
        self.store.audit(kind, actor, detail, self.clock.now())

    # -- reports ------------------------------------------------------------------
    def errors(self, window: float) -> ErrorSummary:
        """Events, incidents and fixability over the last ``window`` seconds."""
        now = self.clock.now()
        patterns = self._patterns()
        by_pattern: Counter[str] = Counter()
        by_severity: Counter[str] = Counter()
        incidents: set[int] = set()
        fixable: set[int] = set()
        for c in reads.event_counts(self.store, now - window):
            by_pattern[c.pattern_id] += c.events
            by_severity[c.severity.value if c.severity is not None else "unknown"] += c.events
            incidents.add(c.incident_id)
            p = patterns.get(c.pattern_id)
            if p is not None and p.fixable:
                fixable.add(c.incident_id)
        return ErrorSummary(
            window=window,
            now=now,
            total_events=sum(by_pattern.values()),
            incidents=len(incidents),
            fixable=len(fixable),
            by_pattern=dict(by_pattern),
            by_severity=dict(by_severity),
            tags={pid: _tag(patterns.get(pid)) for pid in by_pattern},
            recent=(recent := tuple(self.store.incidents(since=now - window, limit=10))),
            priorities={inc.id: self.triage(inc, now).priority for inc in recent},
        )

    def triage(self, inc: Incident, now: float) -> Triage:
        """The incident's priority now (``healer.engine.triage``): its matches counted in the triage window."""
        with self.store.reading() as db:
            return incident_triage(self.store, db, inc, self.settings, now)

    def health(self) -> HealthResult:
        s = self.settings
        now = self.clock.now()
        return HealthResult(
            host=host.collect(s.health),
            errors=self.errors(1800.0),
            kill_switch=s.kill_switch,
            breaker_open=self._breaker_until(now) is not None,
            recent=tuple(self.store.incidents(limit=5)),
            now=now,
        )

    def history(self, limit: int = 15) -> HistoryResult:
        return HistoryResult(
            outcomes=reads.outcome_counts(self.store),
            attempts=tuple(self.store.attempts(limit=limit)),
            decisions=reads.recent_decisions(self.store, limit),
            now=self.clock.now(),
        )

    def explain(self, incident_id: int) -> ExplainResult:
        now = self.clock.now()
        story = reads.incident_story(self.store, incident_id)
        if story is None:
            return ExplainResult(incident_id, None, now)
        checks = tuple(self.store.check_records(incident_id))
        return ExplainResult(incident_id, story, now, checks, self.triage(story.incident, now))

    def status(self) -> StatusResult:
        rules = self._rules()
        now = self.clock.now()
        until = self._breaker_until(now)
        return StatusResult(
            kill_switch=rules.settings.kill_switch,
            dry_run=rules.settings.dry_run,
            breaker_open=until is not None,
            breaker_until=until,
            patterns=len(rules.patterns),
            counts=reads.status_counts(self.store, now),
            now=now,
            rejected=self._rejected_files(),
        )

    def _rejected_files(self) -> tuple[RejectedFile, ...]:
        """Each pattern file that does not load, and whether the daemon keeps its last good version.

        The daemon's own ruleset knows (``Ruleset.kept``); the CLI, which loads the files afresh,
        reads the daemon's audit of the same error instead.
        """
        rules = self._rules()
        kept = {k.path: k.patterns for k in rules.kept}
        said = {
            (str(e.detail.get("file")), str(e.detail.get("error"))): e.detail.get("kept")
            for e in reversed(self.store.audit_entries(AuditKind.PATTERN_FILE_REJECTED, limit=200))
        }
        out = []
        for err in rules.pattern_errors:
            n = kept.get(err.path, said.get((err.path, err.problem)))
            out.append(RejectedFile(str(err), n if isinstance(n, int) else None))
        return tuple(out)

    def incident_counts(self, ids: Sequence[int]) -> dict[int, int]:
        """How many times each incident has fired (the bot's digest and "still firing" updates)."""
        out = {}
        for i in ids:
            inc = self.store.incident(i)
            if inc is not None:
                out[i] = inc.count
        return out

    # -- pattern lifecycle (healer.app.lifecycle) ------------------------------------------
    def patterns(self) -> lifecycle.PatternsReport:
        """Every pattern in effect with its mode, its figures and what ``healer patterns`` recommends."""
        return lifecycle.report(self.store, self._rules().patterns, self.settings.lifecycle)

    def set_mode(self, pattern_id: str, mode: PatternMode, actor: str, why: str = "") -> str:
        return lifecycle.set_mode(self.store, self._patterns(), pattern_id, mode, actor, why, self.clock.now())

    def mark_wrong(self, incident_id: int, actor: str) -> lifecycle.MarkResult:
        """ "Not this": the incident's match was wrong; counts against promoting its pattern."""
        return lifecycle.mark_wrong(self.store, incident_id, actor, self.clock.now())

    # -- fix open incidents -----------------------------------------------------------
    def _refusal(self) -> Reason | None:
        """The one judgement of the switches that stop operator-started fixes."""
        s = self.settings
        if s.kill_switch:
            return Reason.KILL_SWITCH
        if s.dry_run:
            return Reason.DRY_RUN
        return None

    def request_fixes(self, actor: str) -> FixReport:
        """Decide, with every guardrail, which open incidents get a fix now (records decisions)."""
        refused = self._refusal()
        if refused is not None:
            self.audit(AuditKind.FIX_REFUSED, actor, {"reason": refused.value})
            return FixReport(refused)
        result = self.engine.fix_open(actor)
        todo = tuple(j for j in result.jobs if isinstance(j, FixJob))
        return FixReport(None, decisions=tuple(result.decisions), jobs=len(todo), todo=todo)

    def run_fixes(self, report: FixReport) -> FixReport:
        """Run what ``request_fixes`` decided and wait (bounded) for the outcomes."""
        if not report.todo:
            return report
        return replace(report, outcomes=self._run(report.todo), todo=())

    def fix_open(self, actor: str) -> FixReport:
        return self.run_fixes(self.request_fixes(actor))

    def _run(self, jobs: tuple[FixJob, ...]) -> tuple[JobOutcome, ...]:
        attempts = self._run_jobs(list[Job](jobs))
        patterns = self._patterns()
        out = []
        for job, attempt in zip(jobs, attempts, strict=True):
            p = patterns.get(job.pattern_id)
            actions = tuple(s.action for s in p.steps) if p is not None else ()
            if attempt is None:
                attempt, note = self._missing_attempt(job)
            else:
                note = ""
            out.append(JobOutcome(job.incident_id, actions, attempt, note))
        return tuple(out)

    def _missing_attempt(self, job: FixJob) -> tuple[FixAttempt | None, str]:
        """Why a job gave no attempt: its target was busy, it is still running, or it was refused."""
        line = reads.decision(self.store, job.decision.id)
        if line is not None and line.state is ApprovalState.BUSY:
            return None, line.detail
        for a in self.store.attempts(incident_id=job.incident_id, limit=5):
            if a.decision_id == job.decision.id:
                return a, "still running"
        return None, "refused before starting; see history"

    # -- approvals --------------------------------------------------------------------
    def decide_settle(self, decision_id: int, approve: bool, actor: str) -> SettleReport:
        """Approve or reject once (records the decision that follows); nothing runs yet."""
        now = self.clock.now()
        refused = self._refusal() if approve else None
        if refused is not None:
            # Judged before the approval is consumed, so it can be pressed again once the switch is off.
            detail = {"decision": decision_id, "approve": True, "result": refused.value}
            self.audit(AuditKind.APPROVAL, actor, detail)
            return SettleReport(decision_id, approve, SettleStatus.OK, refused=refused, now=now)
        got = self.engine.settle_approval(decision_id, approve, actor)
        until = self._breaker_until(now)
        todo = (got.job,) if got.job is not None else ()
        return SettleReport(
            decision_id, approve, got.status, decision=got.decision, breaker_until=until, now=now, todo=todo
        )

    def finish_settle(self, report: SettleReport) -> SettleReport:
        if not report.todo:
            return report
        return replace(report, outcomes=self._run(report.todo), todo=())

    def settle(self, decision_id: int, approve: bool, actor: str) -> SettleReport:
        return self.finish_settle(self.decide_settle(decision_id, approve, actor))

    def undo(self, attempt_id: int, actor: str) -> tuple[bool, str]:
        """Put back a fix that worked (``healer undo``, the Undo button); audited, and told like every outcome."""
        self.audit(AuditKind.FIX_REQUESTED, actor, {"undo": attempt_id})
        return self.engine.undo_by_hand(attempt_id, actor)

    # -- a pasted line -----------------------------------------------------------------
    def explain_line(self, text: str, actor: str) -> LineExplanation:
        """Which patterns a line matches, the fix each names, and whether it would run here (nothing runs)."""
        hits = self.engine.matcher.match_text(text[:EXPLAIN_MAX_CHARS])
        self.audit(AuditKind.CHAT_MATCH, actor, {"text": text[:300], "patterns": [h.pattern.id for h in hits]})
        now = self.clock.now()
        out = []
        for h in hits:
            groups = {k: v for k, v in h.groups.items() if k != "match"}
            would, why = self._would(h.pattern, now)
            why_not = self.engine.cannot_run(h.pattern, groups) if would in (Would.RUN, Would.ASK) else ""
            if why_not:
                would, why = Would.REFUSE, f"cannot run here: {why_not}"
            out.append(
                LineHit(
                    h.pattern.id,
                    h.pattern.severity,
                    h.pattern.description,
                    h.line,
                    groups,
                    describe_fix(h.pattern, groups),
                    would,
                    why,
                )
            )
        return LineExplanation(text, tuple(out))

    def _would(self, p: Pattern, now: float) -> tuple[Would, str]:
        # The policy's own first rulings (notify only, kill switch, draining, dry run), not a copy of them.
        ruled = gate(Subject(0, ""), p, guardrails(self.settings, draining=self.engine.draining))
        if ruled is not None:
            return _GATE_WOULD[ruled.reason]
        until = self._breaker_until(now)
        if until is not None:
            return Would.REFUSE, f"the circuit breaker is open for {until - now:.0f}s more"
        where = f" (only for lines from {', '.join(sorted(p.sources))})" if p.sources is not None else ""
        # A probe replaces counting lines: it looks at the fault first, and only a confirmed one is fixed.
        probed = " once a probe confirms the fault" if p.confirm else ""
        if p.approval is Approval.ASK:
            return Would.ASK, "asks for approval first" + probed + where
        if p.confirm:
            return Would.RUN, "runs at the first match" + probed + where
        if p.threshold_count > 1:
            return Would.RUN, f"runs after {p.threshold_count} matches in {p.threshold_window:g}s" + where
        return Would.RUN, "runs automatically" + where

    # -- replay -----------------------------------------------------------------------
    def replay(
        self,
        fh: BinaryIO,
        service: str,
        origin: str,
        source: SourceName = SourceName.FILE,
        *,
        timestamps: bool = False,
        set_clock: Callable[[float], None] | None = None,
    ) -> ReplayReport:
        """Feed a log through the engine as the daemon's tailer would (``healer.app.replay``)."""
        from healer.app.replay import replay_log

        return replay_log(
            self.engine, self._run_jobs, fh, service, origin, source, timestamps=timestamps, set_clock=set_clock
        )


def describe_fix(pattern: Pattern, groups: Mapping[str, str]) -> str:
    """The chain a pattern would run, with the captured groups filled in."""
    parts = []
    for step in pattern.steps:
        params = ", ".join(f"{k}={render(v, groups)}" for k, v in step.params.items())
        parts.append(f"{step.action}({params})")
    return " → ".join(parts)


def _tag(p: Pattern | None) -> str:
    if p is None or not p.fixable:
        return "notify only"
    return "auto-fix" if p.approval is Approval.AUTO else "fix on approval"
