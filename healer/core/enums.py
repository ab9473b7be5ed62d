"""Every state that crosses a module boundary, as an enum.

The store maps these to and from its columns; nothing else compares their
string values. A new state is added here, where mypy and every ``match``
over it can see it, instead of as a string literal at one call site.
"""

from __future__ import annotations

from enum import StrEnum


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


class Priority(StrEnum):
    """An incident's triage (``healer.engine.triage``): P0 needs a human now, P3 can wait for ever."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        return int(self.value[1])

    @classmethod
    def of_rank(cls, rank: int) -> Priority:
        return cls(f"P{min(3, max(0, rank))}")


class Criticality(StrEnum):
    """How much a service matters (``services.<name>.criticality``): moves its incidents' priority."""

    CRITICAL = "critical"
    NORMAL = "normal"
    LOW = "low"


class PatternMode(StrEnum):
    """A pattern's lifecycle: ``shadow`` matches and records what it would do but never acts or pages."""

    ACTIVE = "active"
    SHADOW = "shadow"


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
    DRY_RUN = "dry_run"  # dry run: the fix would run now (counts for cooldown and budget as a fix would)
    DRY_RUN_ASK = "dry_run_ask"  # dry run: a human would be asked to approve the fix
    DRY_RUN_REFUSED = "dry_run_refused"  # dry run: the fix would start, and its action's own check refuse it
    THRESHOLD = "threshold"
    COOLDOWN = "cooldown"
    MAX_ATTEMPTS = "max_attempts"
    BUDGET = "budget"
    APPROVAL = "approval"
    CIRCUIT_OPEN = "circuit_open"
    NOTIFY_ONLY = "notify_only"
    FAILED_BEFORE = "failed_before"
    IN_PROGRESS = "in_progress"
    DRAINING = "draining"
    FLAPPING = "flapping"  # the fix applied but did not hold, twice in a row
    HOSTILE_INPUT = "hostile_input"  # a captured value was refused as an injection attempt
    CANNOT_RUN = "cannot_run"  # the fix's action is unconfigured, not allowlisted or fails its own check here
    TARGET_BUSY = "target_busy"  # another fix held the target's lock: retried by the scheduler like a precondition
    PRECONDITION = "precondition"  # a precondition of the fix failed: blocked (critical) or asked (warning)
    PROTECTED_PATHS = "protected_paths"  # a git_sync would change a protected path: a human approves it
    PRIORITY = "priority"  # the incident's triage is at or above triage.ask_at: a human approves the fix
    CONFIRMING = "confirming"  # a confirm: pattern's probe is checking the fault before anything runs
    REFUTED = "refuted"  # the probe found no fault to fix (Redis is up): notify only
    NEEDS_HUMAN = "needs_human"  # the probe found a fault the fix can only refuse (a conflicted merge): escalate
    SHADOW = "shadow"  # the pattern is in shadow mode: the detail says what it would have done; nothing ran


class Confirm(StrEnum):
    """What a confirmation probe found, before a fix, about the fault a line reports."""

    CONFIRMED = "confirmed"  # the fault is real (the unit is down, the module does not import): act now
    REFUTED = "refuted"  # it is not (the unit is up): acting would not help, so notify only
    UNKNOWN = "unknown"  # the probe cannot tell: the pattern's threshold decides, as without a probe
    # The fault is real and this action can only refuse it (a merge stopped on conflicts): asking a
    # human to approve a fix that cannot run is pointless, so the incident is escalated at once.
    STUCK = "stuck"


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


class ApprovalState(StrEnum):
    """Where a decision that asked a human stands. Only ``ask`` decisions have one."""

    NONE = ""  # the decision never asked
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    BUSY = "busy"  # an ACT whose target was locked: it never ran and does not use the budget
    BLOCKED = "blocked"  # an ACT stopped by a precondition before it started: no budget used either


class Trigger(StrEnum):
    """What started a decision: a match, an operator's "fix errors", or an approval."""

    AUTO = "auto"
    MANUAL = "manual"
    APPROVED = "approved"
    RETRY = "retry"  # a fix a critical precondition blocked, decided again once the condition cleared


class CheckSeverity(StrEnum):
    """What a failed precondition does: ``critical`` blocks the fix, ``warning`` turns it into a question."""

    CRITICAL = "critical"
    WARNING = "warning"


class SettleStatus(StrEnum):
    """How pressing Approve or Reject (or ``healer approve``) ended."""

    OK = "ok"  # settled; for an approval, the decision that followed says what ran
    DONE = "done"  # already settled by someone else
    EXPIRED = "expired"
    MISSING = "missing"  # no such decision, or not one that asked
    KILL_SWITCH = "kill_switch"  # refused before the approval was consumed
    BLOCKED = "blocked"  # approved, but a guardrail stopped the fix; the decision says which


class SourceName(StrEnum):
    """Where an event came from; patterns select on it with ``sources:``."""

    FILE = "file"
    JOURNALD = "journald"
    SENTRY = "sentry"
    GLITCHTIP = "glitchtip"
    ALERTMANAGER = "alertmanager"
    CHAT = "chat"  # a line pasted into Telegram: matched and explained, never acted on


class Route(StrEnum):
    """Where a notice goes: to the chat now, into the digest, or nowhere."""

    IMMEDIATE = "immediate"
    DIGEST = "digest"
    NONE = "none"


class Unaddressed(StrEnum):
    """What a healer does with a group command that names no host (``telegram.unaddressed``, issue 17)."""

    ANSWER = "answer"  # the only healer in the chat: every command is for it
    HINT = "hint"  # say once per chat how to address a host, then stay quiet
    IGNORE = "ignore"  # another healer in the chat gives the hint


class AuditKind(StrEnum):
    """Every kind of audit entry healer writes; tests and reports name these, never strings."""

    DAEMON_STARTED = "daemon_started"
    DAEMON_STOPPED = "daemon_stopped"
    CONFIG_CHANGED = "config_changed"
    CONFIG_REJECTED = "config_rejected"
    PATTERN_FILE_REJECTED = "pattern_file_rejected"  # a live reload: its last good version stays, if it had one
    PATTERN_FILE_ACCEPTED = "pattern_file_accepted"  # a file rejected before loads again
    APPROVAL = "approval"
    FIX_REQUESTED = "fix_requested"
    FIX_REFUSED = "fix_refused"
    FIX_BLOCKED = "fix_blocked"  # a decided fix stopped at its start by the kill switch or dry run
    PRECONDITIONS = "preconditions"  # every precondition verdict of one fix, with its decision
    FIX_BUSY = "fix_busy"
    FIX_UNDONE = "fix_undone"
    FIX_REVERTED = "fix_reverted"
    FIX_RECOVERED = "fix_recovered"
    BREAKER_TRIPPED = "breaker_tripped"
    SECURITY_REFUSAL = "security_refusal"  # a captured value refused as an injection attempt
    INCIDENT_RESOLVED = "incident_resolved"
    TELEGRAM_REFUSED = "telegram_refused"
    COMMAND_REFUSED = "command_refused"  # an allowed chat, but a person who may not approve/reject/undo/fix
    CONTROL_REFUSED = "control_refused"  # the control socket refused a peer (another uid)
    CHAT_MATCH = "chat_match"
    WEBHOOK_REFUSED = "webhook_refused"
    ALERT_NOT_OURS = "alert_not_ours"  # an Alertmanager alert about another host of the fleet: never acted on
    PROC = "proc"
    GIT = "git"
    GIT_SYNC_UNDO = "git_sync_undo"
    DELETE = "delete"
    DISK_CLEANUP_SKIP = "disk_cleanup_skip"
    PIP_UNDO = "pip_undo"
    RESTART_VERIFY = "restart_verify"
    PATTERN_MODE = "pattern_mode"  # an operator promoted or demoted a pattern (healer patterns promote/demote)
    MARKED_WRONG = "marked_wrong"  # an operator said an incident's match was "not this" (button, healer mark)
    CONFIRM_PROBE = "confirm_probe"  # a confirm: pattern's probe ran; its verdict and why
    RESTORE_FILE = "restore_file"
    RESTORE_FILE_UNDO = "restore_file_undo"
    RESTORE_FILE_UNDO_CONFLICT = "restore_file_undo_conflict"
    SET_CONFIG = "set_config"
    SET_CONFIG_UNDO = "set_config_undo"
    SET_CONFIG_UNDO_CONFLICT = "set_config_undo_conflict"


class Family(StrEnum):
    """What kind of fault a pattern recognises, independent of its id.

    Scores over a labelled corpus (``healer.rules.corpus``) and the JSON
    verdicts are keyed on this, so renaming or splitting a pattern does not
    change them. ``unknown`` is the notify-only catch-all (a bare traceback).
    """

    RATE_LIMIT = "rate_limit"
    MISSING_MODULE = "missing_module"
    GIT_CONFLICT = "git_conflict"
    GIT_ERROR = "git_error"
    CONFIG_ERROR = "config_error"
    ATTRIBUTE_ERROR = "attribute_error"
    TYPE_ERROR = "type_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    REDIS_DOWN = "redis_down"
    DB_DOWN = "db_down"
    DISK_FULL = "disk_full"
    PIP_ERROR = "pip_error"
    UNKNOWN = "unknown"
