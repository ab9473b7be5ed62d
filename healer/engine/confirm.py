"""Confirm before acting: run a ``confirm: true`` pattern's probe, then decide again with what it found.

The probe is the first step's ``Action.confirm``: quick, read-only, through
the one ``Runner``. It runs on a fix thread, never inside the ingest
transaction, and what it finds is held (``holds.py``) so a storm of lines
probes once per ``confirm_interval``:

- confirmed: the decision that follows acts (or asks) at once, whatever the
  threshold;
- refuted: notify only, no attempt and no budget spent; the decision's
  detail and one notice say why;
- unknown: the pattern's threshold decides, as without a probe;
- a hostile captured value: escalated as a security refusal at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from structlog.contextvars import bound_contextvars

from healer.core.enums import AuditKind, Outcome, Reason, Trigger, Verdict
from healer.core.errors import HostileValue
from healer.core.jobs import FixJob, IngestResult, ProbeJob
from healer.core.notices import Notice, NoticeKind
from healer.core.records import FixAttempt
from healer.engine.decisions import Decider
from healer.engine.evidence import security_detail
from healer.engine.fixes import Fixer
from healer.engine.wiring import Wiring

log = structlog.get_logger("healer.engine.confirm")


class Confirmer:
    def __init__(self, w: Wiring, decider: Decider, fixer: Fixer) -> None:
        self.w = w
        self.decider = decider
        self.fixer = fixer

    def run(self, job: ProbeJob) -> FixAttempt | None:
        """Probe, record the verdict, decide again; run the fix it leads to on this thread, as any fix job."""
        w = self.w
        pattern = w.by_id.get(job.pattern_id)
        if pattern is None or not pattern.steps or w.store.incident(job.incident_id) is None:
            w.holds.clear(job.incident_id)
            return None

        def audit(kind: AuditKind, data: Mapping[str, object]) -> None:
            w.store.audit(kind, "engine", {"incident": job.incident_id, "probe": True, **data}, w.clock.now())

        action, ctx = self.fixer.step_context(job, pattern, w.settings, 0, audit)
        with bound_contextvars(incident=job.incident_id, pattern=pattern.id):
            try:
                found = action.confirm(ctx)
            except HostileValue as exc:
                # Escalated as the fix would have been, but before an approval could be asked for it.
                w.holds.clear(job.incident_id)
                hostile = security_detail(pattern.id, exc)
                self.decider.after_failure(job.incident_id, pattern, Outcome.REFUSED, str(exc), w.clock.now(), hostile)
                return None
            now = w.clock.now()
            changed = w.holds.settle(job.incident_id, found, now, pattern.confirm_interval)
            w.store.audit(
                AuditKind.CONFIRM_PROBE,
                "engine",
                {
                    "incident": job.incident_id,
                    "action": action.name,
                    "status": found.status.value,
                    "detail": found.detail,
                },
                now,
            )
            log.info("confirm_probe", status=found.status.value, detail=found.detail)
            result = IngestResult()
            with w.store.tx() as db:
                inc = w.store.incident_in(db, job.incident_id)
                # n=0: the "confirming" decision already counted the line(s) that asked for this probe.
                decision = self.decider.decide_and_record(
                    db, inc, pattern, job.groups, job.service, now, Trigger.AUTO, result, 0, found=found
                )
            if decision.verdict is Verdict.NOTIFY and decision.reason is Reason.REFUTED and changed:
                text = f"{pattern.id}: not fixing incident #{inc.id}, the fault is not there: {found.detail}"
                result.notices.append(
                    Notice(NoticeKind.REFUTED, pattern.severity, text, incident=inc, decision=decision)
                )
            w.emit(result.notices)
            if w.metrics is not None:
                w.metrics.decisions.labels(verdict=decision.verdict.value, reason=decision.reason.value).inc()
        fix = next((j for j in result.jobs if isinstance(j, FixJob)), None)
        return None if fix is None else self.fixer.run_fix(fix)
