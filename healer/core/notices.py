"""What healer tells a human, independent of how it is delivered.

The engine emits Notices; the Telegram bot routes them by severity (at once,
digest, or not at all) and the log always gets them. Keeping delivery out of
the engine means the daemon heals the same with or without a bot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from healer.core.enums import Priority, Severity
from healer.core.records import Decision, FixAttempt, Incident


class NoticeKind(StrEnum):
    INCIDENT = "incident"  # a new (or reopened) incident
    INCIDENT_UPDATE = "incident_update"  # the same incident goes on (deduplicated by the router)
    APPROVAL = "approval"  # a fix waits for Approve / Reject
    FIX_STARTED = "fix_started"
    FIX_RESULT = "fix_result"
    ESCALATION = "escalation"
    REFUTED = "refuted"  # a confirm: pattern's probe found no fault: nothing was run, and why
    BREAKER = "breaker"
    HEALTH = "health"
    RESOLVED = "resolved"
    EXPIRED = "expired"  # an approval nobody answered within engine.approval_ttl: its buttons are removed
    CONFIG = "config"  # a config or pattern file rejected on reload (the last good one stays), or loading again


class Told(StrEnum):
    """The outcome a notice reports: the message, the Undo button and healer_outcomes{outcome} read the same value."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    BLOCKED = "blocked"
    ESCALATED = "escalated"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    severity: Severity
    text: str
    incident: Incident | None = None
    decision: Decision | None = None
    attempt: FixAttempt | None = None
    link: str = ""
    # The outcome this notice reports (succeeded, failed, refused, blocked, escalated, expired), counted
    # as healer_outcomes{outcome} where the notice is emitted: the metric and the message never disagree.
    outcome: Told | None = None
    # The incident's triage when the notice was made: routes incident news (telegram.priority_routing).
    priority: Priority | None = None
    # From a pattern in shadow mode: never sent at once, only in the digest.
    shadow: bool = False


NoticeSink = Callable[[Notice], None]
