"""One exception tree for the whole package.

    HealerError
    ├── ConfigError       a config file, .env line or HEALER__ override is invalid (file, key, fix)
    ├── PatternError      one pattern file is invalid; only that file is skipped
    ├── PatternSetError   the patterns compile alone but not together (RE2's combined scan)
    ├── ParamError        an action's parameters or settings are invalid at load time
    ├── ActionError       a fix step failed while running
    │   └── ActionRefused   a fix step must not run (allowlist, precondition, unsafe input)
    ├── StoreError        the SQLite store cannot be opened or written
    ├── InputError        a command's own input is unusable (a log file that is not there)
    └── WebhookError      a webhook delivery is refused (with the HTTP status to answer)

Callers (the CLI, the daemon's reload path, the webhook receiver) catch
``HealerError`` and show ``str(err)``, so every message must name the file or
field at fault and say what to do about it.
"""

from __future__ import annotations


class HealerError(Exception):
    """Base of every error healer raises on purpose."""


class ConfigError(HealerError):
    """The configuration file is unreadable or invalid.

    ``path`` is the file, ``key`` the dotted key path at fault (empty when the
    whole file is bad).
    """

    def __init__(self, path: str, key: str, problem: str, fix: str = "") -> None:
        self.path = path
        self.key = key
        self.problem = problem
        self.fix = fix
        where = f"{path}: {key}" if key else path
        msg = f"{where}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class PatternSetError(HealerError):
    """Every pattern compiles alone, but not all of them together in RE2's combined scan."""

    def __init__(self, count: int, problem: str) -> None:
        self.count = count
        self.problem = problem
        super().__init__(
            f"the {count} patterns in force do not compile together into RE2's combined scan ({problem}); "
            "simplify or remove the largest patterns (bounded repetitions such as {1,40} repeated many times "
            "cost the most)"
        )


class PatternError(HealerError):
    """A pattern file is invalid; only that file is skipped."""

    def __init__(self, path: str, problem: str, line: int | None = None, pattern_id: str = "") -> None:
        self.path = path
        self.line = line
        self.pattern_id = pattern_id
        self.problem = problem
        where = path if line is None else f"{path}:{line}"
        if pattern_id:
            where += f" [{pattern_id}]"
        super().__init__(f"{where}: {problem}")


class ActionError(HealerError):
    """An action failed while running (check, apply, verify or undo)."""


class ActionRefused(ActionError):
    """An action refused to run: a value is not allowlisted or a precondition fails.

    Raised before any process starts, so a refusal is always safe.
    """


class HostileValue(ActionRefused):
    """A value taken from a log line was refused because it looks like an attack, not a name.

    Raised by an action's allowlist screening; the engine turns it into a
    security escalation naming ``param``, the (untrusted) ``value`` and
    ``rule``, the check it failed. Never executed: raised before any process.
    """

    def __init__(self, param: str, value: str, rule: str) -> None:
        self.param = param
        self.value = value
        self.rule = rule
        super().__init__(f"{param} {value!r} {rule}")


class ParamError(HealerError):
    """An action's parameters or settings are invalid at load time."""


class InputError(HealerError):
    """Input a command cannot use (a missing log file, a bad option value): one line, exit 2."""


class StoreError(HealerError):
    """The SQLite store cannot be opened or written."""


class WebhookError(HealerError):
    """A webhook body or its authentication is invalid.

    ``status`` is the HTTP status to answer with.
    """

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")
