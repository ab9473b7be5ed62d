"""The engine's public face: from matched events to recorded decisions, and from decisions to fixes.

A thin facade over one module per job:

- ``ingest.py``: a batch → events, incidents, decisions and its offset or
  cursor, in one transaction → jobs and notices;
- ``policy.py``: the decision chain, a pure function of a snapshot that
  ``guardrails.py`` reads from the store; ``decisions.py`` records it and
  carries out what it implies (a job, a question, an escalation);
- ``confirm.py``: a ``confirm: true`` pattern's probe, then the decision
  again with its verdict (``holds.py`` keeps it a while);
- ``fixes.py``: runs a chain (``remedy/runner.py``) and settles it: undo,
  verify window, timed revert, crash recovery, all through
  ``remedy/reverter.py``.

Ingestion is synchronous and runs on one worker thread; the daemon runs the
jobs on other threads, so a slow pip install never delays the next line's
decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from healer.core.batch import Chunk
from healer.core.clock import Clock, SystemClock
from healer.core.enums import AuditKind, IncidentStatus, Outcome, SettleStatus, SourceName, Trigger, Verdict
from healer.core.jobs import FixJob, IngestResult, Job, ProbeJob, SettleResult, UndoJob
from healer.core.notices import NoticeSink
from healer.core.proc import Runner
from healer.core.records import Event, FixAttempt
from healer.engine.confirm import Confirmer
from healer.engine.decisions import Decider
from healer.engine.fixes import Fixer
from healer.engine.ingest import Ingestor
from healer.engine.triage import incident_triage
from healer.engine.wiring import Wiring
from healer.rules.matcher import Matcher
from healer.rules.patterns import Pattern
from healer.settings.schema import Settings
from healer.store.db import BlockedFix, Store


class Engine:
    def __init__(
        self,
        settings: Settings,
        patterns: Sequence[Pattern],
        store: Store,
        *,
        clock: Clock | None = None,
        runner: Runner | None = None,
        notice: NoticeSink | None = None,
        metrics: Any = None,  # service.metrics.Metrics: the service layer sits above the engine
    ) -> None:
        self._w = Wiring(store, clock or SystemClock(), runner or Runner(), settings, notice, metrics)
        self._w.load(settings, patterns)
        self._decider = Decider(self._w)
        self._ingest = Ingestor(self._w, self._decider)
        self._fixes = Fixer(self._w, self._decider)
        self._confirmer = Confirmer(self._w, self._decider, self._fixes)

    # -- what callers read and set ---------------------------------------------
    @property
    def store(self) -> Store:
        return self._w.store

    @property
    def clock(self) -> Clock:
        return self._w.clock

    @property
    def runner(self) -> Runner:
        return self._w.runner

    @property
    def settings(self) -> Settings:
        return self._w.settings

    @property
    def matcher(self) -> Matcher:
        return self._w.matcher

    @property
    def by_id(self) -> dict[str, Pattern]:
        return self._w.by_id

    @property
    def draining(self) -> bool:
        return self._w.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self._w.draining = value

    @property
    def notice(self) -> NoticeSink | None:
        return self._w.notice

    @notice.setter
    def notice(self, sink: NoticeSink | None) -> None:
        self._w.notice = sink

    @property
    def metrics(self) -> Any:
        return self._w.metrics

    @metrics.setter
    def metrics(self, value: Any) -> None:
        self._w.metrics = value

    def reconfigure(self, settings: Settings, patterns: Sequence[Pattern]) -> None:
        """Swap settings and patterns; in-flight work keeps the objects it already read."""
        self._w.load(settings, patterns)

    # -- ingestion ------------------------------------------------------------------
    def ingest_chunk(self, chunk: Chunk) -> IngestResult:
        return self._ingest.chunk(chunk)

    def ingest_buffer(
        self, data: bytes, service: str, origin: str, source: SourceName = SourceName.FILE, base: int = 0
    ) -> IngestResult:
        return self._ingest.buffer(data, service, origin, source, base)

    def ingest_events(self, events: Iterable[Event], cursor: tuple[str, str] | None = None) -> IngestResult:
        return self._ingest.events(events, cursor)

    # -- fixes -------------------------------------------------------------------------
    def run_job(self, job: Job) -> FixAttempt | None:
        if isinstance(job, UndoJob):
            self._fixes.undo_attempt(job.attempt_id, job.reason)
            return None
        if isinstance(job, ProbeJob):
            return self._confirmer.run(job)
        return self._fixes.run_fix(job)

    def run_fix(self, job: FixJob) -> FixAttempt | None:
        return self._fixes.run_fix(job)

    def undo_attempt(self, attempt_id: int, reason: str) -> Outcome:
        return self._fixes.undo_attempt(attempt_id, reason)

    def cannot_run(self, pattern: Pattern, groups: Mapping[str, str], service: str = "") -> str:
        """Why the pattern's fix cannot run here ('' when it can); without a service, role steps are not judged."""
        return self._fixes.cannot_run(0, pattern, groups, service, roles=bool(service))

    def expire_approvals(self) -> int:
        return self._decider.expire_due(self.clock.now())

    def undo_by_hand(self, attempt_id: int, actor: str) -> tuple[bool, str]:
        return self._fixes.undo_by_hand(attempt_id, actor)

    def finalize_due(self) -> list[int]:
        return self._fixes.finalize_due()

    def due_reverts(self) -> list[int]:
        return self._fixes.due_reverts()

    def recover(self) -> list[tuple[int, Outcome]]:
        return self._fixes.recover()

    def breaker_open(self, now: float) -> bool:
        return self._decider.breaker_open(now)

    # -- fixes a precondition blocked ------------------------------------------------------------
    def cleared_blocks(self) -> list[BlockedFix]:
        """Blocked fixes whose critical preconditions pass now; probes the host (off the ingest thread)."""
        return self._fixes.prechecks.cleared()

    def retry_blocked(self, cleared: Sequence[BlockedFix]) -> IngestResult:
        """Decide the cleared fixes again (trigger ``retry``); run the result's jobs."""
        return self._fixes.prechecks.retry(cleared)

    # -- operator actions -----------------------------------------------------------------
    def fix_open(self, actor: str) -> IngestResult:
        """``healer fix`` / "fix errors": every guardrail still applies; threshold and cooldown do not."""
        w = self._w
        now = w.clock.now()
        result = IngestResult()
        with w.store.tx() as db:
            w.store.audit_in(db, AuditKind.FIX_REQUESTED, actor, {}, now)
            incidents = w.store.incidents(status=[IncidentStatus.OPEN], limit=200)
            # The most urgent first: a budget or breaker that runs out mid-way stops the P3s, not the P0s.
            rank = {i.id: incident_triage(w.store, db, i, w.settings, now).priority.rank for i in incidents}
            for inc in sorted(incidents, key=lambda i: (rank[i.id], i.id)):
                pattern = w.by_id.get(inc.pattern_id)
                if pattern is None or not pattern.fixable:
                    continue
                groups = w.store.incident_facts(db, inc.id).groups
                self._decider.decide_and_record(db, inc, pattern, groups, inc.service, now, Trigger.MANUAL, result)
        w.emit(result.notices)
        return result

    def settle_approval(self, decision_id: int, approve: bool, actor: str) -> SettleResult:
        """Approve or reject once; an approved fix still passes every guardrail.

        OK with a job when the fix may run; BLOCKED with the decision (its
        reason and detail say which guardrail) when one stopped it.
        """
        w = self._w
        now = w.clock.now()
        if approve and w.settings.kill_switch:
            # Checked before the approval is consumed, so it can be pressed again once the switch is off.
            audit = {"decision": decision_id, "approve": True, "result": SettleStatus.KILL_SWITCH.value}
            w.store.audit(AuditKind.APPROVAL, actor, audit, now)
            return SettleResult(SettleStatus.KILL_SWITCH)
        status, taken = w.store.take_approval(decision_id, approve, actor, now)
        w.store.audit(
            AuditKind.APPROVAL, actor, {"decision": decision_id, "approve": approve, "result": status.value}, now
        )
        if status is not SettleStatus.OK or taken is None or not approve:
            return SettleResult(status, taken.decision if taken is not None else None)
        pattern = w.by_id.get(taken.decision.pattern_id)
        inc = w.store.incident(taken.decision.incident_id)
        if pattern is None or inc is None:
            return SettleResult(SettleStatus.MISSING, taken.decision)
        result = IngestResult()
        with w.store.tx() as db:
            decision = self._decider.decide_and_record(
                db, inc, pattern, taken.groups, taken.service, now, Trigger.APPROVED, result
            )
            w.store.set_decided_by(db, decision.id, actor)
        w.emit(result.notices)
        job = next((j for j in result.jobs if isinstance(j, FixJob)), None)
        if decision.verdict is not Verdict.ACT or job is None:
            return SettleResult(SettleStatus.BLOCKED, decision)
        return SettleResult(SettleStatus.OK, decision, job)
