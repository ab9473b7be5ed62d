"""The one interface every remediation implements, and the registry of them.

Modelled on certbot's reverter: an action records what it needs to undo
(``ctx.checkpoint``) *before* it changes anything, so a crash mid-apply can
still be rolled back on restart, and a failed chain is undone in reverse.

Actions are synchronous on purpose: they run in a worker thread, off the
asyncio loop, because git, pip and systemctl block.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from healer.core.clock import Clock, SystemClock
from healer.core.errors import ParamError
from healer.core.proc import Runner

JSON = dict[str, Any]

# Placeholders in pattern params: "{module}" takes the named group "module".
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Always available to templates, never taken from the log line.
BUILTIN_VARS = frozenset({"service", "pattern", "incident"})


def _noop_audit(kind: str, data: Mapping[str, object]) -> None:
    return None


def _noop_checkpoint(state: Mapping[str, object]) -> None:
    return None


@dataclass(frozen=True)
class ActionContext:
    """Everything one step of a fix may use.

    ``params`` are the pattern's parameters with placeholders filled from the
    captured groups: they are hostile text and must be validated again by the
    action before use. ``settings`` is the action's parsed config section
    (``actions.<name>``), the allowlists.
    """

    incident_id: int
    attempt_id: int
    pattern_id: str
    params: Mapping[str, str]
    settings: Any
    runner: Runner = field(default_factory=Runner)
    state_dir: Path = Path(".")
    clock: Clock = field(default_factory=SystemClock)
    groups: Mapping[str, str] = field(default_factory=dict)
    audit: Callable[[str, Mapping[str, object]], None] = _noop_audit
    checkpoint: Callable[[Mapping[str, object]], None] = _noop_checkpoint


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    detail: str = ""


class Action(ABC):
    """One remediation. Subclasses set ``name`` and register with ``@register``."""

    name: ClassVar[str]
    needs_root: ClassVar[bool] = False
    reversible: ClassVar[bool] = True
    # Param keys a pattern may give; anything else is a load-time error.
    param_keys: ClassVar[frozenset[str]] = frozenset()
    required_params: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> Any:
        """Validate ``actions.<name>`` from the config; raise ParamError naming ``where``."""
        if raw:
            raise ParamError(f"{where}: action {cls.name!r} takes no settings, got {sorted(raw)}")
        return None

    @classmethod
    def validate_params(cls, params: Mapping[str, str], settings: Any = None) -> None:
        """Load-time check of a pattern's params (templates, before groups are filled)."""
        unknown = set(params) - cls.param_keys
        if unknown:
            raise ParamError(
                f"action {cls.name!r} has no parameter(s) {sorted(unknown)}; known: {sorted(cls.param_keys) or 'none'}"
            )
        missing = cls.required_params - set(params)
        if missing:
            raise ParamError(f"action {cls.name!r} needs parameter(s) {sorted(missing)}")

    def target(self, ctx: ActionContext) -> str:
        """The lock key: two fixes on the same target never run at once."""
        return f"{self.name}:{ctx.pattern_id}"

    @abstractmethod
    def check(self, ctx: ActionContext) -> None:
        """Raise ActionRefused if this step must not run. Starts no process with hostile input."""

    @abstractmethod
    def apply(self, ctx: ActionContext) -> JSON:
        """Make the change. Call ``ctx.checkpoint`` with the undo state first. Return that state."""

    @abstractmethod
    def verify(self, ctx: ActionContext, state: JSON) -> VerifyResult:
        """Did the change take?"""

    def can_undo(self, ctx: ActionContext, state: JSON) -> bool:
        """Whether ``undo`` really reverses this step; rollback counts only those as undone."""
        return self.reversible

    def undo(self, ctx: ActionContext, state: JSON) -> None:
        """Reverse ``apply``. Irreversible actions leave this as is."""
        return None


REGISTRY: dict[str, type[Action]] = {}


def register(cls: type[Action]) -> type[Action]:
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"action {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get_action(name: str) -> type[Action]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ParamError(f"unknown action {name!r}; known actions: {', '.join(sorted(REGISTRY))}") from None


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders; names were checked at load, so a miss is empty."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def str_list(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ParamError(f"{where}: expected a list of strings")
    return list(raw)


def str_map(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ParamError(f"{where}: expected a mapping of strings to strings")
    return dict(raw)
