"""What every part of the engine shares: the store, the clock, the runner, and the live configuration."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from healer.core.clock import Clock
from healer.core.lograte import LogBudget
from healer.core.notices import Notice, NoticeKind, NoticeSink
from healer.core.proc import Runner
from healer.engine.holds import Holds
from healer.rules.assemble import Limits
from healer.rules.matcher import Matcher
from healer.rules.patterns import Pattern
from healer.settings.schema import Settings
from healer.store.db import Store

log = structlog.get_logger("healer.engine")


@dataclass(eq=False)
class Wiring:
    """Mutable on purpose: ``reconfigure`` swaps settings and patterns, ``drain`` sets ``draining``.

    Each assignment is atomic; a fix reads ``settings`` and ``by_id`` once at
    its start, and every action re-validates against its allowlist.
    """

    store: Store
    clock: Clock
    runner: Runner
    settings: Settings
    notice: NoticeSink | None = None
    metrics: Any = None  # service.metrics.Metrics; typed Any because the service layer sits above the engine
    draining: bool = False
    matcher: Matcher = field(default_factory=lambda: Matcher([]))
    by_id: dict[str, Pattern] = field(default_factory=dict)
    # Incident news is logged at a bounded rate (a flood of distinct lines is otherwise one log
    # line each); notices about action taken are always logged.
    incident_log: LogBudget = field(default_factory=LogBudget)
    # What confirmation probes found, per incident: kept across a reload, like the store.
    holds: Holds = field(default_factory=Holds)

    def load(self, settings: Settings, patterns: Sequence[Pattern]) -> None:
        self.matcher = Matcher(patterns, Limits.of(settings.sources.multiline))
        self.by_id = {p.id: p for p in patterns}
        self.settings = settings

    def emit(self, notices: Iterable[Notice]) -> None:
        for n in notices:
            if n.outcome is not None and self.metrics is not None:
                self.metrics.outcomes.labels(outcome=n.outcome.value).inc()
            news = n.kind in (NoticeKind.INCIDENT, NoticeKind.INCIDENT_UPDATE)
            left_out = self.incident_log.spend(self.clock.monotonic()) if news else 0
            if left_out is not None:
                extra = {"left_out": left_out} if left_out else {}
                log.info("notice", kind=n.kind.value, severity=n.severity.value, text=n.text[:300], **extra)
            if self.notice is not None:
                try:
                    self.notice(n)
                except Exception as exc:  # delivery trouble must never stop healing
                    log.warning("notice_failed", error=str(exc))
