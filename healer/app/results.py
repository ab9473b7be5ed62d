"""What each use case returns: typed facts, rendered to text by ``reports.py``.

The CLI and the bot render the same records with the same functions, which
is what makes "the CLI says what the bot says" true by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from healer.app.health import HostHealth
from healer.core.enums import Outcome, Priority, Reason, SettleStatus, Severity
from healer.core.jobs import FixJob
from healer.core.records import Decision, FixAttempt, Incident
from healer.engine.triage import Triage
from healer.store.db import CheckRecord
from healer.store.reads import DecisionLine, IncidentStory, StatusCounts


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    window: float  # seconds back from ``now``
    now: float
    total_events: int
    incidents: int
    fixable: int
    by_pattern: Mapping[str, int]
    by_severity: Mapping[str, int]  # severity value, or "unknown" for a pruned incident
    tags: Mapping[str, str]  # pattern id -> "auto-fix" | "fix on approval" | "notify only"
    recent: tuple[Incident, ...] = ()
    priorities: Mapping[int, Priority] = field(default_factory=dict)  # incident id -> its triage now


@dataclass(frozen=True, slots=True)
class HealthResult:
    host: HostHealth
    errors: ErrorSummary
    kill_switch: bool
    breaker_open: bool
    recent: tuple[Incident, ...]
    now: float


@dataclass(frozen=True, slots=True)
class HistoryResult:
    outcomes: Mapping[Outcome, int]
    attempts: tuple[FixAttempt, ...]
    decisions: tuple[DecisionLine, ...]
    now: float


@dataclass(frozen=True, slots=True)
class ExplainResult:
    incident_id: int
    story: IncidentStory | None  # None: no such incident
    now: float
    checks: tuple[CheckRecord, ...] = ()  # each evaluation of the fix's preconditions and reviews
    triage: Triage | None = None


@dataclass(frozen=True, slots=True)
class RejectedFile:
    error: str  # file:line [id]: problem
    kept: int | None  # patterns of its last good version the daemon keeps; None: none loaded


@dataclass(frozen=True, slots=True)
class StatusResult:
    kill_switch: bool
    dry_run: bool
    breaker_open: bool
    breaker_until: float | None
    patterns: int
    counts: StatusCounts
    now: float
    # Pattern files that did not load, each with what stays in force instead (issue 14 §5).
    rejected: tuple[RejectedFile, ...] = ()


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """One fix job after it ran: its attempt, or why there is none."""

    incident_id: int
    actions: tuple[str, ...]
    attempt: FixAttempt | None
    note: str = ""  # for no attempt: "target busy (...)", "still running", "refused before starting"


@dataclass(frozen=True, slots=True)
class FixReport:
    """ "fix errors" / ``healer fix``: refused as a whole, or the decisions and what ran."""

    refused: Reason | None  # KILL_SWITCH or DRY_RUN: nothing was decided
    decisions: tuple[Decision, ...] = ()
    outcomes: tuple[JobOutcome, ...] = ()
    jobs: int = 0
    todo: tuple[FixJob, ...] = ()  # decided but not run yet (between request_fixes and run_fixes)


@dataclass(frozen=True, slots=True)
class SettleReport:
    """Approve/Reject: how it ended, and for an approval what ran or what blocked it."""

    decision_id: int
    approve: bool
    status: SettleStatus
    refused: Reason | None = None  # KILL_SWITCH or DRY_RUN: judged before the approval was consumed
    decision: Decision | None = None  # the decision the approval led to (its reason says what blocked it)
    breaker_until: float | None = None
    outcomes: tuple[JobOutcome, ...] = ()
    now: float = 0.0
    todo: tuple[FixJob, ...] = ()  # the approved fix, until finish_settle runs it


class Would(StrEnum):
    """What healer would do with a line it matched, said before anything happens."""

    RUN = "run"
    ASK = "ask"
    REFUSE = "refuse"
    NOTIFY = "notify"
    SKIP = "skip"  # replay: held back by a guardrail (threshold, cooldown, budget, a question waiting)
    ESCALATE = "escalate"  # replay: handed to a human (max attempts, failed before)
    SHADOW = "shadow"  # replay: a shadow pattern, recorded and never acting (its detail says what it would do)


@dataclass(frozen=True, slots=True)
class LineHit:
    pattern_id: str
    severity: Severity
    description: str
    line: str
    groups: Mapping[str, str]
    fix: str  # "command(command=ok) → ..." or "" for notify only
    would: Would
    why: str


@dataclass(frozen=True, slots=True)
class LineExplanation:
    text: str
    hits: tuple[LineHit, ...]


@dataclass(frozen=True, slots=True)
class ReplayDecision:
    """One decision of a replayed incident, in the operator's terms: what would have happened, how often."""

    would: Would
    reason: Reason
    count: int
    ts: float
    detail: str


@dataclass(frozen=True, slots=True)
class ReplayIncident:
    incident: Incident
    last: Decision | None
    decisions: tuple[ReplayDecision, ...] = ()

    def tally(self) -> dict[Would, int]:
        """Matches per outcome, in the order a person reads them (run, ask, refuse, escalate, skip, notify)."""
        order = (Would.RUN, Would.ASK, Would.REFUSE, Would.ESCALATE, Would.SHADOW, Would.SKIP, Would.NOTIFY)
        counts = {w: sum(d.count for d in self.decisions if d.would is w) for w in order}
        return {w: n for w, n in counts.items() if n}


@dataclass(frozen=True, slots=True)
class ReplayReport:
    lines: int
    matches: int
    cut: int  # lines cut at sources.max_line_bytes
    seconds: float
    incidents: tuple[ReplayIncident, ...]
    timestamps: bool = False  # windows from the lines' own timestamps
    undated: int = 0  # with timestamps: events whose line had none (they took the previous line's time)
