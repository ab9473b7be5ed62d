"""From matched events to recorded decisions, and from decisions to fixes.

Ingestion (``ingest_*``) is synchronous and runs on one worker thread: it
matches, groups hits by fingerprint, records events, incidents and decisions,
and the source's offset or cursor, in one transaction. It returns the jobs
that a decision asked for (run a fix, undo a fix that did not hold); the
daemon runs those on other threads, so a slow pip install never delays the
next log line's decision.

The decision chain, in order, each outcome recorded with its reason: notify
only, kill switch, draining, dry run, threshold, fix in progress, pending
approval, escalated (failed before, within failure_memory), max attempts,
cooldown, budget, circuit breaker, approval. Whatever passes them all acts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog

from healer.core.batch import Chunk
from healer.core.clock import Clock, SystemClock
from healer.core.enums import Approval, IncidentStatus, Outcome, Reason, SourceName, Trigger, Verdict
from healer.core.errors import ActionError, ActionRefused, HealerError
from healer.core.jobs import FixJob, IngestResult, Job, UndoJob
from healer.core.notices import Notice, NoticeKind, NoticeSink
from healer.core.proc import Runner
from healer.core.records import Decision, Event, FixAttempt, Incident, StepResult
from healer.remedy.base import Action, ActionContext, get_action, render
from healer.rules.fingerprint import fingerprint
from healer.rules.matcher import LineHit, Matcher
from healer.rules.patterns import Pattern
from healer.settings.config import Settings
from healer.store.db import EventRow, Store

log = structlog.get_logger("healer.engine.engine")

APPLIED = "_healer_applied"
"""Set in a step's checkpointed state once its ``apply`` returned (crash recovery tells the two apart)."""


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
        metrics: Any = None,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.runner = runner or Runner()
        self.notice = notice
        self.metrics = metrics
        self.draining = False
        self.reconfigure(settings, patterns)

    # -- configuration ------------------------------------------------------
    def reconfigure(self, settings: Settings, patterns: Sequence[Pattern]) -> None:
        """Swap settings and patterns; in-flight work keeps the objects it already read.

        Each assignment is atomic; a fix reads ``settings`` and ``by_id`` once
        at its start, and every action re-validates against its allowlist.
        """
        self.matcher = Matcher(patterns)
        self.by_id = {p.id: p for p in patterns}
        self.settings = settings

    # -- ingestion ------------------------------------------------------------
    def ingest_chunk(self, chunk: Chunk) -> IngestResult:
        """A file chunk: events, decisions and the file offset commit together."""
        now = self.clock.now()
        matcher = self.matcher
        hits = [h for h in matcher.scan(chunk.data) if h.pattern.selects("file", chunk.service, {})]
        events = [
            (Event(source=SourceName.FILE, service=chunk.service, message=h.line, ts=now, origin=chunk.path), h)
            for h in hits
        ]
        o = chunk.offset
        result = self._ingest(
            events, now, lambda db: self.store.save_offset(db, o.path, o.inode, o.dev, o.position, o.head_hash, now)
        )
        if self.metrics is not None:
            self.metrics.lines_read.labels(source="file").inc(chunk.data.count(b"\n"))
        return result

    def ingest_buffer(
        self, data: bytes, service: str, origin: str, source: SourceName = SourceName.FILE
    ) -> IngestResult:
        """Lines with no offset to keep: ``healer replay`` and tests (file lines, as the daemon tags them)."""
        now = self.clock.now()
        hits = [h for h in self.matcher.scan(data) if h.pattern.selects(source, service, {})]
        events = [(Event(source=source, service=service, message=h.line, ts=now, origin=origin), h) for h in hits]
        return self._ingest(events, now, None)

    def ingest_events(self, events: Iterable[Event], cursor: tuple[str, str] | None = None) -> IngestResult:
        """Journald entries, webhook alerts, pasted lines: matched one by one, fields and all."""
        now = self.clock.now()
        pairs: list[tuple[Event, LineHit]] = []
        resolved: list[Event] = []
        for ev in events:
            if ev.resolved:
                resolved.append(ev)
                continue
            for h in self.matcher.match_text(ev.message):
                if h.pattern.selects(ev.source, ev.service, ev.fields):
                    pairs.append((ev, h))

        def extra(db: sqlite3.Connection) -> None:
            for ev in resolved:
                for inc_id in self.store.resolve_by_source_id(db, ev.source, ev.source_id, now):
                    self.store.audit_in(db, "incident_resolved", ev.source, {"incident": inc_id}, now)
            if cursor is not None:
                self.store.save_cursor(db, cursor[0], cursor[1], now)

        return self._ingest(pairs, now, extra, grouped=False)

    def _ingest(
        self,
        pairs: Sequence[tuple[Event, LineHit]],
        now: float,
        extra: Callable[[sqlite3.Connection], None] | None,
        grouped: bool = True,
    ) -> IngestResult:
        result = IngestResult(matched=len(pairs))
        groups: dict[str, tuple[Pattern, list[Event], LineHit]] = {}
        singles: list[tuple[str, Pattern, Event, LineHit]] = []
        for ev, hit in pairs:
            fp = fingerprint(hit.pattern, hit.groups, ev)
            if grouped:
                g = groups.get(fp)
                if g is None:
                    groups[fp] = (hit.pattern, [ev], hit)
                else:
                    g[1].append(ev)
                    groups[fp] = (g[0], g[1], hit)
            else:
                singles.append((fp, hit.pattern, ev, hit))
        with self.store.tx() as db:
            for fp, (pattern, evs, hit) in groups.items():
                rec = self.store.record_group(db, pattern.id, fp, pattern.severity, evs, hit.groups)
                self._after_record(
                    db, rec.incident, rec.new_incident or rec.reopened, pattern, hit, evs[-1], len(evs), now, result
                )
            for fp, pattern, ev, hit in singles:
                rec1 = self.store.record_event(db, EventRow(ev, pattern.id, fp, pattern.severity, hit.groups))
                if rec1.duplicate:
                    continue
                self._after_record(
                    db, rec1.incident, rec1.new_incident or rec1.reopened, pattern, hit, ev, 1, now, result
                )
            if extra is not None:
                extra(db)
        result.events = len(pairs)
        self._emit(result.notices)
        if self.metrics is not None:
            for _, hit in pairs:
                self.metrics.matches.labels(pattern=hit.pattern.id).inc()
            for d in result.decisions:
                self.metrics.decisions.labels(verdict=d.verdict.value, reason=d.reason.value).inc()
        return result

    def _after_record(
        self,
        db: sqlite3.Connection,
        inc: Incident,
        fresh: bool,
        pattern: Pattern,
        hit: LineHit,
        ev: Event,
        n: int,
        now: float,
        result: IngestResult,
    ) -> None:
        if fresh:
            result.notices.append(
                Notice(
                    NoticeKind.INCIDENT, pattern.severity, f"{pattern.id}: {hit.line[:300]}", incident=inc, link=ev.link
                )
            )
        undo = self._verify_window_breach(db, inc, now)
        if undo is not None:
            result.jobs.append(undo)
        self._decide_and_record(db, inc, pattern, hit.groups, ev.service, now, Trigger.AUTO, result, n)

    def _decide_and_record(
        self,
        db: sqlite3.Connection,
        inc: Incident,
        pattern: Pattern,
        groups: Mapping[str, str],
        service: str,
        now: float,
        trigger: Trigger,
        result: IngestResult,
        n: int = 1,
    ) -> Decision:
        verdict, reason, detail = self.decide(db, inc, pattern, now, trigger, groups)
        decision, new = self.store.record_decision(
            db,
            inc.id,
            pattern.id,
            verdict,
            reason,
            now,
            detail,
            expires_at=now + self.settings.engine.approval_ttl if verdict is Verdict.ASK else None,
            trigger=trigger,
            collapse=trigger is Trigger.AUTO,
        )
        if n > 1:  # one decision covers every match of this fingerprint in the batch
            db.execute("UPDATE decisions SET count = count + ? WHERE id = ?", (n - 1, decision.id))
        result.decisions.append(decision)
        self._decision_effects(db, decision, new, inc, pattern, groups, service, trigger, result)
        return decision

    def _decision_effects(
        self,
        db: sqlite3.Connection,
        decision: Decision,
        new: bool,
        inc: Incident,
        pattern: Pattern,
        groups: Mapping[str, str],
        service: str,
        trigger: Trigger,
        result: IngestResult,
    ) -> None:
        if decision.verdict is Verdict.ACT:
            result.jobs.append(FixJob(decision, inc.id, pattern.id, dict(groups), service, trigger))
        elif decision.verdict is Verdict.ASK and new:
            # What the fix needs once approved: the captured groups (re-validated by the action then).
            db.execute(
                "UPDATE decisions SET context = ?, detail = ? WHERE id = ?",
                (
                    json.dumps({"groups": dict(groups), "service": service}),
                    _describe(pattern, groups, service, inc.id),
                    decision.id,
                ),
            )
            result.notices.append(
                Notice(
                    NoticeKind.APPROVAL,
                    pattern.severity,
                    f"{pattern.id} wants to run {_describe(pattern, groups, service, inc.id)}",
                    incident=inc,
                    decision=decision,
                )
            )
        elif decision.verdict is Verdict.ESCALATE and new:
            self.store.set_incident_status(db, inc.id, IncidentStatus.ESCALATED, decision.ts)
            result.notices.append(
                Notice(
                    NoticeKind.ESCALATION,
                    pattern.severity,
                    f"{pattern.id}: escalated to a human ({decision.reason.value}: {decision.detail})",
                    incident=inc,
                    decision=decision,
                )
            )

    # -- the decision chain ---------------------------------------------------
    def decide(
        self,
        db: sqlite3.Connection,
        inc: Incident,
        pattern: Pattern,
        now: float,
        trigger: Trigger,
        groups: Mapping[str, str] | None = None,
    ) -> tuple[Verdict, Reason, str]:
        s = self.settings
        e = s.engine
        if not pattern.steps or pattern.approval is Approval.NEVER:
            return Verdict.NOTIFY, Reason.NOTIFY_ONLY, "pattern has no automatic fix"
        if s.kill_switch:
            return Verdict.SKIP, Reason.KILL_SWITCH, "kill_switch is on in the config"
        if self.draining:
            return Verdict.SKIP, Reason.DRAINING, "shutting down"
        if s.dry_run:
            return Verdict.SKIP, Reason.DRY_RUN, "would run " + _describe(pattern, groups or {}, inc.service, inc.id)
        if trigger is Trigger.AUTO and pattern.threshold_count > 1:
            n = self.store.count_in_window(db, inc.id, now - pattern.threshold_window, pattern.threshold_count)
            if n < pattern.threshold_count:
                return Verdict.SKIP, Reason.THRESHOLD, f"{n}/{pattern.threshold_count} in {pattern.threshold_window:g}s"
        active = self.store.active_attempt(db, inc.id)
        if active is not None:
            return Verdict.SKIP, Reason.IN_PROGRESS, f"attempt #{active['id']} is {active['outcome']}"
        if self.store.pending_approval(db, inc.id, now):
            return Verdict.SKIP, Reason.APPROVAL, "waiting for approval"
        row = self.store.incident_row(db, inc.id)
        attempts = inc.attempts
        if inc.status is IncidentStatus.ESCALATED:
            since = now - (row["escalated_at"] or now)
            if since < e.failure_memory:
                return (
                    Verdict.SKIP,
                    Reason.FAILED_BEFORE,
                    (f"escalated {since:.0f}s ago; not retried automatically for {e.failure_memory:.0f}s"),
                )
            # The failure is old news: healer may try again, from a fresh count.
            self.store.reopen_escalated(db, inc.id)
            attempts = 0
        if attempts >= pattern.max_attempts:
            return Verdict.ESCALATE, Reason.MAX_ATTEMPTS, f"{attempts} attempts made"
        if trigger is Trigger.AUTO and row["last_fix_at"] is not None and now - row["last_fix_at"] < pattern.cooldown:
            ago = now - row["last_fix_at"]
            # A clock stepped back makes the last fix look future: still cooling down, said plainly.
            when = f"{ago:.0f}s ago" if ago >= 0 else "in the future (the clock went back)"
            return Verdict.SKIP, Reason.COOLDOWN, f"last fix {when}"
        if self.store.acts_since(db, now - 3600) >= e.fix_budget_per_hour:
            return Verdict.SKIP, Reason.BUDGET, f"{e.fix_budget_per_hour} fixes in the last hour"
        if self.breaker_open(now):
            return Verdict.NOTIFY, Reason.CIRCUIT_OPEN, "circuit breaker open after repeated failures"
        if pattern.approval is Approval.ASK and trigger is not Trigger.APPROVED:
            return Verdict.ASK, Reason.APPROVAL, ""
        return Verdict.ACT, Reason.OK, _describe(pattern, groups or {}, inc.service, inc.id)

    def breaker_open(self, now: float) -> bool:
        until = self.store.get_state("breaker_open_until")
        return until is not None and float(until) > now

    # -- fixes -----------------------------------------------------------------
    def run_job(self, job: Job) -> FixAttempt | None:
        if isinstance(job, UndoJob):
            self.undo_attempt(job.attempt_id, job.reason)
            return None
        return self.run_fix(job)

    def run_fix(self, job: FixJob) -> FixAttempt | None:
        """Run a chain: check, apply, verify each step; on failure undo in reverse."""
        settings = self.settings  # one snapshot for the whole chain, even across a reload
        pattern = self.by_id.get(job.pattern_id)
        if pattern is None:
            log.warning("fix_pattern_gone", pattern=job.pattern_id)
            return None
        # The kill switch and dry run win even over a decision made (or approved) a moment ago.
        blocked = "kill_switch" if settings.kill_switch else "dry_run" if settings.dry_run else ""
        if blocked:
            self.store.audit(
                "fix_blocked", "engine", {"incident": job.incident_id, "reason": blocked}, self.clock.now()
            )
            return None
        now = self.clock.now()
        values = {**job.groups, "service": job.service, "pattern": pattern.id, "incident": str(job.incident_id)}
        plan: list[tuple[Action, ActionContext]] = []
        stack: list[dict[str, Any]] = []
        attempt_box: list[int] = []

        def make_checkpoint(idx: int, name: str, params: Mapping[str, str]) -> Callable[[Mapping[str, object]], None]:
            def cp(state: Mapping[str, object]) -> None:
                entry = {"step": idx, "action": name, "params": dict(params), "state": dict(state)}
                if stack and stack[-1]["step"] == idx:
                    stack[-1] = entry
                else:
                    stack.append(entry)
                if attempt_box:
                    self.store.checkpoint(attempt_box[0], stack)

            return cp

        def audit(kind: str, data: Mapping[str, object]) -> None:
            self.store.audit(
                kind, "engine", {"attempt": attempt_box[0] if attempt_box else None, **data}, self.clock.now()
            )

        for i, step in enumerate(pattern.steps):
            params = {k: render(v, values) for k, v in step.params.items()}
            action = get_action(step.action)()
            ctx = ActionContext(
                incident_id=job.incident_id,
                attempt_id=0,
                pattern_id=pattern.id,
                params=params,
                settings=settings.actions.get(step.action),
                runner=self.runner,
                state_dir=settings.state_dir,
                clock=self.clock,
                groups=dict(job.groups),
                audit=audit,
                checkpoint=make_checkpoint(i, step.action, params),
            )
            plan.append((action, ctx))
        names = [a.name for a, _ in plan]
        try:
            targets = [a.target(c) for a, c in plan]
        except HealerError as exc:
            targets = [f"invalid:{exc}"]
        aid = self.store.start_attempt(job.incident_id, job.decision.id, names, targets, now, job.trigger)
        if aid is None:
            self.store.mark_busy(job.decision.id, targets)
            self.store.audit("fix_busy", "engine", {"incident": job.incident_id, "targets": targets}, now)
            return None
        attempt_box.append(aid)
        log.info("fix_started", attempt=aid, incident=job.incident_id, actions=names)
        self._emit(
            [
                Notice(
                    NoticeKind.FIX_STARTED,
                    pattern.severity,
                    f"fix #{aid} for incident #{job.incident_id}: {' → '.join(names)}",
                )
            ]
        )
        results: list[StepResult] = []
        outcome = Outcome.VERIFYING
        detail = ""
        try:
            for action, ctx in plan:
                action.check(ctx)
                state = action.apply(ctx)
                ctx.checkpoint({**state, APPLIED: True})
                vr = action.verify(ctx, state)
                if not vr.ok:
                    raise ActionError(f"{action.name}: verify failed: {vr.detail}")
                results.append(StepResult(action.name, Outcome.SUCCEEDED, vr.detail))
        except ActionRefused as exc:
            detail = f"refused: {exc}"
            results.append(StepResult(plan[len(results)][0].name, Outcome.REFUSED, str(exc)))
            outcome = self._rollback(plan, stack, results, default=Outcome.REFUSED)
        except Exception as exc:  # an action failing must never take the daemon down
            detail = f"{type(exc).__name__}: {exc}" if not isinstance(exc, HealerError) else str(exc)
            if len(results) < len(plan):
                results.append(StepResult(plan[len(results)][0].name, Outcome.FAILED, detail))
            outcome = self._rollback(plan, stack, results, default=Outcome.FAILED)
        end = self.clock.now()
        verify_until = end + settings.engine.verify_window if outcome is Outcome.VERIFYING else None
        if outcome is Outcome.VERIFYING:
            detail = "applied and verified; watching for recurrence"
            reverts = [e["state"]["revert_at"] for e in stack if isinstance(e["state"].get("revert_at"), int | float)]
            if reverts:
                self.store.set_revert_at(aid, min(reverts))
        self.store.finish_attempt(aid, outcome, end, detail, results, verify_until)
        log.info("fix_finished", attempt=aid, outcome=outcome.value, detail=detail)
        if outcome is not Outcome.VERIFYING:
            self._after_failure(job.incident_id, pattern, aid, outcome, detail, end)
        attempt = self.store.attempts(incident_id=job.incident_id, limit=1)[0]
        self._emit(
            [Notice(NoticeKind.FIX_RESULT, pattern.severity, f"fix #{aid} {outcome.value}: {detail}", attempt=attempt)]
        )
        if self.metrics is not None:
            self.metrics.fix_attempts.labels(action="+".join(names), outcome=outcome.value).inc()
        return attempt

    def _rollback(
        self,
        plan: Sequence[tuple[Action, ActionContext]],
        stack: list[dict[str, Any]],
        results: list[StepResult],
        default: Outcome,
    ) -> Outcome:
        """Undo every step that checkpointed, newest first (certbot's reverter order)."""
        undone = 0
        failed = False
        for entry in reversed(stack):
            action, ctx = plan[entry["step"]]
            try:
                reversible = action.can_undo(ctx, entry["state"])
            except Exception:
                reversible = action.reversible
            if not reversible:
                continue
            try:
                action.undo(ctx, entry["state"])
                undone += 1
                results.append(StepResult(action.name, Outcome.ROLLED_BACK, "undone"))
            except Exception as exc:
                failed = True
                results.append(StepResult(action.name, Outcome.ROLLBACK_FAILED, f"{type(exc).__name__}: {exc}"))
                log.error("undo_failed", action=action.name, error=str(exc))
        if failed:
            return Outcome.ROLLBACK_FAILED
        return Outcome.ROLLED_BACK if undone else default

    def _after_failure(
        self, incident_id: int, pattern: Pattern, attempt_id: int, outcome: Outcome, detail: str, now: float
    ) -> None:
        e = self.settings.engine
        notices: list[Notice] = []
        with self.store.tx() as db:
            inc = self.store._incident(db, incident_id)
            if inc.attempts >= pattern.max_attempts and inc.status is not IncidentStatus.ESCALATED:
                self.store.set_incident_status(db, incident_id, IncidentStatus.ESCALATED, now)
                d, _ = self.store.record_decision(
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
            if (
                not self.breaker_open(now)
                and self.store.failures_since(db, now - e.breaker_window) >= e.breaker_failures
            ):
                self.store.set_state(db, "breaker_open_until", str(now + e.breaker_cooldown))
                self.store.audit_in(db, "breaker_tripped", "engine", {"until": now + e.breaker_cooldown}, now)
                notices.append(
                    Notice(
                        NoticeKind.BREAKER,
                        pattern.severity,
                        f"circuit breaker open for {e.breaker_cooldown:.0f}s after "
                        f"{e.breaker_failures} failed fixes: notify-only",
                    )
                )
        if self.metrics is not None and notices:
            self.metrics.circuit_open.set(1 if self.breaker_open(now) else 0)
        self._emit(notices)

    def _verify_window_breach(self, db: sqlite3.Connection, inc: Incident, now: float) -> UndoJob | None:
        """The incident came back while its fix was being watched: the fix failed."""
        row = self.store.active_attempt(db, inc.id)
        if row is None or row["outcome"] != Outcome.VERIFYING.value:
            return None
        if row["verify_until"] is not None and row["verify_until"] < now:
            return None
        # UNDOING keeps the target locked until the rollback has run, so no new fix overlaps it.
        why = "incident recurred within the verify window"
        if not self.store.set_outcome(db, int(row["id"]), Outcome.UNDOING, why, now, expect=Outcome.VERIFYING):
            return None
        return UndoJob(int(row["id"]), why)

    def undo_attempt(self, attempt_id: int, reason: str) -> Outcome:
        """Roll back a fix that did not hold; its locks are released only afterwards."""
        row = self.store.attempt_row(attempt_id)
        if row is None:
            return Outcome.FAILED
        stack = json.loads(row["undo_state"] or "[]")
        pattern = self.by_id.get(self._pattern_of(int(row["incident_id"])))
        plan = self._plan_from_stack(stack, int(row["incident_id"]), pattern.id if pattern else "")
        results: list[StepResult] = []
        outcome = self._rollback(plan, stack, results, default=Outcome.FAILED)
        now = self.clock.now()
        with self.store.tx() as db:
            self.store.set_outcome(db, attempt_id, outcome, f"{reason}; {outcome.value}", now)
            self.store.audit_in(db, "fix_undone", "engine", {"attempt": attempt_id, "outcome": outcome.value}, now)
        if pattern is not None:
            self._after_failure(int(row["incident_id"]), pattern, attempt_id, outcome, reason, now)
        if self.metrics is not None:
            self.metrics.fix_attempts.labels(action="undo", outcome=outcome.value).inc()
        return outcome

    def _pattern_of(self, incident_id: int) -> str:
        inc = self.store.incident(incident_id)
        return inc.pattern_id if inc else ""

    def _plan_from_stack(
        self, stack: Sequence[Mapping[str, Any]], incident_id: int, pattern_id: str
    ) -> list[tuple[Action, ActionContext]]:
        plan: list[tuple[Action, ActionContext]] = []
        for idx, entry in enumerate(stack):
            name = str(entry["action"])
            ctx = ActionContext(
                incident_id=incident_id,
                attempt_id=0,
                pattern_id=pattern_id,
                params=dict(entry["params"]),
                settings=self.settings.actions.get(name),
                runner=self.runner,
                state_dir=self.settings.state_dir,
                clock=self.clock,
            )
            plan.append((get_action(name)(), ctx))
            if isinstance(entry, dict):
                entry["step"] = idx
        return plan

    def finalize_due(self) -> list[int]:
        """Fixes whose verify window passed quietly are now succeeded."""
        now = self.clock.now()
        done = []
        rows = self.store.query(
            "SELECT id, incident_id FROM fix_attempts WHERE outcome = ? AND verify_until <= ?",
            (Outcome.VERIFYING.value, now),
        )
        for r in rows:
            with self.store.tx() as db:
                # Only from VERIFYING: a recurrence may have flipped it to UNDOING meanwhile.
                ok = self.store.set_outcome(
                    db, int(r["id"]), Outcome.SUCCEEDED, "quiet through the verify window", now,
                    expect=Outcome.VERIFYING,
                )  # fmt: skip
                if ok:
                    self.store.set_incident_status(db, int(r["incident_id"]), IncidentStatus.FIXED, now)
                    done.append(int(r["id"]))
        return done

    def due_reverts(self) -> list[int]:
        """Undo fixes whose ``revert_at`` has come (model fallback: the primary comes back)."""
        now = self.clock.now()
        done = []
        rows = self.store.query(
            "SELECT id FROM fix_attempts WHERE revert_at <= ? AND reverted_at IS NULL AND outcome IN (?, ?)",
            (now, Outcome.VERIFYING.value, Outcome.SUCCEEDED.value),
        )
        for r in rows:
            aid = int(r["id"])
            row = self.store.attempt_row(aid)
            assert row is not None
            stack = json.loads(row["undo_state"] or "[]")
            plan = self._plan_from_stack(stack, int(row["incident_id"]), self._pattern_of(int(row["incident_id"])))
            results: list[StepResult] = []
            undone = self._rollback(plan, stack, results, default=Outcome.FAILED)
            with self.store.tx() as db:
                db.execute("UPDATE fix_attempts SET reverted_at = ? WHERE id = ?", (now, aid))
                self.store.audit_in(db, "fix_reverted", "engine", {"attempt": aid, "result": undone.value}, now)
            log.info("fix_reverted", attempt=aid, result=undone.value)
            done.append(aid)
        return done

    def recover(self) -> list[tuple[int, Outcome]]:
        """After a crash: settle attempts left 'running' (verify, or undo) or 'undoing' (undo).

        A chain whose every step applied and still verifies goes back to
        VERIFYING for a full window rather than straight to succeeded.
        """
        out = []
        rows = self.store.query(
            "SELECT * FROM fix_attempts WHERE outcome IN (?, ?)", (Outcome.RUNNING.value, Outcome.UNDOING.value)
        )
        for row in rows:
            if row["outcome"] == Outcome.UNDOING.value:
                out.append((int(row["id"]), self.undo_attempt(int(row["id"]), "undo interrupted by a restart")))
                continue
            aid = int(row["id"])
            stack = json.loads(row["undo_state"] or "[]")
            pattern_id = self._pattern_of(int(row["incident_id"]))
            planned = json.loads(row["actions"])
            plan = self._plan_from_stack(stack, int(row["incident_id"]), pattern_id)
            # A step whose apply never returned was interrupted, whatever its verify would say.
            all_ok = len(stack) == len(planned) and bool(stack) and all(e["state"].get(APPLIED) for e in stack)
            for (action, ctx), entry in zip(plan, stack, strict=True):
                if not all_ok:
                    break
                try:
                    all_ok = action.verify(ctx, entry["state"]).ok
                except Exception:
                    all_ok = False
            now = self.clock.now()
            if all_ok:
                outcome, detail = Outcome.VERIFYING, "recovered after restart: every step verified; watching"
            else:
                results: list[StepResult] = []
                outcome = self._rollback(plan, stack, results, default=Outcome.FAILED)
                detail = f"recovered after restart: interrupted, {outcome.value}"
            with self.store.tx() as db:
                self.store.set_outcome(db, aid, outcome, detail, now)
                if outcome is Outcome.VERIFYING:
                    db.execute(
                        "UPDATE fix_attempts SET verify_until = ? WHERE id = ?",
                        (now + self.settings.engine.verify_window, aid),
                    )
                self.store.audit_in(db, "fix_recovered", "engine", {"attempt": aid, "outcome": outcome.value}, now)
            log.warning("fix_recovered", attempt=aid, outcome=outcome.value)
            pattern = self.by_id.get(pattern_id)
            if outcome is not Outcome.VERIFYING and pattern is not None:
                self._after_failure(int(row["incident_id"]), pattern, aid, outcome, detail, now)
            out.append((aid, outcome))
        self.store.release_stale_locks()
        return out

    # -- operator actions -------------------------------------------------------
    def fix_open(self, actor: str) -> IngestResult:
        """``healer fix`` / "fix errors": every guardrail still applies; threshold and cooldown do not."""
        now = self.clock.now()
        result = IngestResult()
        with self.store.tx() as db:
            self.store.audit_in(db, "fix_requested", actor, {}, now)
            for inc in self.store.incidents(status=[IncidentStatus.OPEN.value], limit=200):
                pattern = self.by_id.get(inc.pattern_id)
                if pattern is None or not pattern.fixable:
                    continue
                groups = json.loads(self.store.incident_row(db, inc.id)["groups"] or "{}")
                self._decide_and_record(db, inc, pattern, groups, inc.service, now, Trigger.MANUAL, result)
        self._emit(result.notices)
        return result

    def settle_approval(self, decision_id: int, approve: bool, actor: str) -> tuple[str, FixJob | None]:
        """Approve or reject once. Returns (status, job to run or None)."""
        now = self.clock.now()
        if approve and self.settings.kill_switch:
            # Checked before the approval is consumed, so it can be pressed again once the switch is off.
            self.store.audit(
                "approval", actor, {"decision": decision_id, "approve": True, "result": "kill_switch"}, now
            )
            return "kill_switch", None
        status, row = self.store.take_approval(decision_id, approve, actor, now)
        self.store.audit("approval", actor, {"decision": decision_id, "approve": approve, "result": status}, now)
        if status != "ok" or row is None or not approve:
            return status, None
        ctx = json.loads(row["context"] or "{}")
        pattern = self.by_id.get(row["pattern_id"])
        inc = self.store.incident(int(row["incident_id"]))
        if pattern is None or inc is None:
            return "missing", None
        # The guardrails still apply to an approved fix: budget, breaker, escalation, a fix already running.
        result = IngestResult()
        with self.store.tx() as db:
            decision = self._decide_and_record(
                db, inc, pattern, ctx.get("groups", {}), ctx.get("service", ""), now, Trigger.APPROVED, result
            )
            db.execute("UPDATE decisions SET decided_by = ? WHERE id = ?", (actor, decision.id))
        self._emit(result.notices)
        if decision.verdict is not Verdict.ACT:
            return decision.reason.value, None
        job = result.jobs[0]
        assert isinstance(job, FixJob)
        return "ok", job

    # -- notices ------------------------------------------------------------------
    def _emit(self, notices: Iterable[Notice]) -> None:
        for n in notices:
            log.info("notice", kind=n.kind.value, severity=n.severity.value, text=n.text[:300])
            if self.notice is not None:
                try:
                    self.notice(n)
                except Exception as exc:  # delivery trouble must never stop healing
                    log.warning("notice_failed", error=str(exc))


def _describe(pattern: Pattern, groups: Mapping[str, str], service: str, incident: int) -> str:
    values = {**groups, "service": service, "pattern": pattern.id, "incident": str(incident)}
    parts = []
    for s in pattern.steps:
        params = ", ".join(f"{k}={render(v, values)}" for k, v in s.params.items())
        parts.append(f"{s.action}({params})")
    return " → ".join(parts) or "nothing"
