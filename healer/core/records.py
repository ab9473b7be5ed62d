"""The frozen records that carry data one way through healer.

source -> Event -> Match -> Incident -> Decision -> FixAttempt -> record.
Nothing downstream mutates what it receives; a stage builds a new record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most urgent, so P0..P3 triage maps onto it directly."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


class Approval(StrEnum):
    AUTO = "auto"
    ASK = "ask"
    NEVER = "never"


class Verdict(StrEnum):
    """What the decision stage concluded for one match."""

    ACT = "act"  # a fix attempt starts now
    ASK = "ask"  # waits for a human to approve
    SKIP = "skip"  # nothing happens; the reason says why
    NOTIFY = "notify"  # notify only (approval: never, or circuit open)
    ESCALATE = "escalate"  # handed to a human after repeated failure


class Reason(StrEnum):
    """Why a decision came out as it did; recorded with every decision."""

    OK = "ok"
    KILL_SWITCH = "kill_switch"
    DRY_RUN = "dry_run"
    THRESHOLD = "threshold"
    COOLDOWN = "cooldown"
    MAX_ATTEMPTS = "max_attempts"
    BUDGET = "budget"
    APPROVAL = "approval"
    CIRCUIT_OPEN = "circuit_open"
    NOTIFY_ONLY = "notify_only"
    NO_ACTION = "no_action"
    FAILED_BEFORE = "failed_before"
    IN_PROGRESS = "in_progress"
    DRAINING = "draining"
    APPROVED = "approved"
    REJECTED = "rejected"
    RESOLVED = "resolved"
    MANUAL = "manual"


class IncidentStatus(StrEnum):
    OPEN = "open"
    FIXED = "fixed"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class Outcome(StrEnum):
    RUNNING = "running"
    VERIFYING = "verifying"  # applied and verified; waiting out the quiet window
    UNDOING = "undoing"  # failed after applying; rollback queued, target still locked
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a source saw: a log line, a journal entry, a webhook alert.

    ``message`` is hostile text. ``fields`` carries source-specific labels
    (``alertname``, ``level``, ``culprit`` ...) that patterns may select on.
    ``source_id`` is the sender's own id, used to drop re-deliveries.
    """

    source: str
    service: str
    message: str
    ts: float
    origin: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    severity: Severity | None = None
    link: str = ""
    source_id: str = ""
    resolved: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    event: Event
    pattern_id: str
    groups: Mapping[str, str]
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    fingerprint: str
    pattern_id: str
    severity: Severity
    status: IncidentStatus
    service: str
    message: str
    count: int
    first_seen: float
    last_seen: float
    sources: tuple[str, ...] = ()
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    id: int
    incident_id: int
    pattern_id: str
    verdict: Verdict
    reason: Reason
    ts: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of a chain: which action, and how it ended."""

    action: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FixAttempt:
    id: int
    incident_id: int
    decision_id: int
    actions: tuple[str, ...]
    outcome: Outcome
    started: float
    finished: float | None
    detail: str = ""
    steps: tuple[StepResult, ...] = ()
