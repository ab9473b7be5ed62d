"""The frozen records that carry data one way through healer.

source -> Event -> Match -> Incident -> Decision -> FixAttempt -> record.
Nothing downstream mutates what it receives; a stage builds a new record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from healer.core.enums import IncidentStatus, Outcome, Reason, Severity, SourceName, Verdict

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a source saw: a log line, a journal entry, a webhook alert.

    ``message`` is hostile text. ``fields`` carries source-specific labels
    (``alertname``, ``level``, ``culprit`` ...) that patterns may select on.
    ``source_id`` is the sender's own id, used to drop re-deliveries.
    ``happened`` is when the event says it happened (journald's realtime
    stamp, a webhook's own time, a log line's leading timestamp), None when
    it does not say: a fix is judged by it, so a backlog never undoes one.
    """

    source: SourceName
    service: str
    message: str
    ts: float
    origin: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    severity: Severity | None = None
    link: str = ""
    source_id: str = ""
    resolved: bool = False
    happened: float | None = None


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
    revert_at: float | None = None  # a timed revert (a model fallback) is due then


# How a fix attempt's detail starts when its incident came back while it was watched (it did not hold):
# written by the engine (``engine.evidence``), counted by the store's pattern figures.
RECURRED = "incident recurred after the fix"
