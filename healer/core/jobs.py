"""Work the engine hands out (fix a fault, undo a fix that did not hold) and what settling an approval gave.

Frozen records in core, so the engine, the service that runs jobs and the
front ends that settle approvals share one vocabulary without importing
each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from healer.core.enums import SettleStatus, Trigger
from healer.core.notices import Notice
from healer.core.records import Decision


@dataclass(frozen=True, slots=True)
class FixJob:
    decision: Decision
    incident_id: int
    pattern_id: str
    groups: Mapping[str, str]
    service: str
    trigger: Trigger = Trigger.AUTO


@dataclass(frozen=True, slots=True)
class UndoJob:
    attempt_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProbeJob:
    """Probe the fault a ``confirm: true`` pattern reported, then decide again with what the probe found."""

    incident_id: int
    pattern_id: str
    groups: Mapping[str, str]
    service: str


Job = FixJob | UndoJob | ProbeJob


@dataclass
class IngestResult:
    """What one batch produced: fixes to run, decisions taken, notices to send."""

    jobs: list[Job] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    matched: int = 0
    events: int = 0


@dataclass(frozen=True, slots=True)
class SettleResult:
    """How an Approve/Reject ended, with everything a front end needs to say why.

    ``decision`` is the decision taken after an approval (its reason and
    detail say which guardrail blocked the fix when ``status`` is BLOCKED);
    ``job`` is the fix to run when one may run.
    """

    status: SettleStatus
    decision: Decision | None = None
    job: FixJob | None = None
