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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, cast, final, get_args, get_origin

from typing_extensions import TypeVar  # PEP 696 defaults (stdlib from 3.13)

from healer.core.clock import Clock, SystemClock
from healer.core.enums import AuditKind, Confirm
from healer.core.errors import ActionRefused, HealerError, HostileValue, ParamError
from healer.core.proc import ProcResult, Runner
from healer.remedy.apps import check_role, role_of

# An action's parsed ``actions.<name>`` section, and the undo state its
# ``apply`` returns: a TypedDict, because the engine stores it as JSON and
# hands it back as a plain mapping (tuples come back as lists). A bare
# ``Action`` (the engine's view of a chain of different actions) is
# ``Action[Any, Any]``.
SettingsT = TypeVar("SettingsT", default=Any)
StateT = TypeVar("StateT", bound=Mapping[str, Any], default=Any)

# Placeholders in pattern params: "{module}" takes the named group "module".
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Always available to templates, never taken from the log line.
BUILTIN_VARS = frozenset({"service", "pattern", "incident"})


def _noop_audit(kind: AuditKind, data: Mapping[str, object]) -> None:
    return None


def _noop_checkpoint(state: Mapping[str, object]) -> None:
    return None


@dataclass(frozen=True)
class ActionContext:
    """Everything one step of a fix may use.

    ``params`` are the pattern's parameters with placeholders filled from the
    captured groups: they are hostile text and must be validated again by the
    action before use. ``settings`` is the action's parsed config section
    (``actions.<name>``), the allowlists, or None when the section is absent;
    ``Action.configured`` turns it into the action's own settings type.
    """

    incident_id: int
    attempt_id: int
    pattern_id: str
    params: Mapping[str, str]
    settings: object
    runner: Runner = field(default_factory=Runner)
    state_dir: Path = Path(".")
    clock: Clock = field(default_factory=SystemClock)
    groups: Mapping[str, str] = field(default_factory=dict)
    audit: Callable[[AuditKind, Mapping[str, object]], None] = _noop_audit
    checkpoint: Callable[[Mapping[str, object]], None] = _noop_checkpoint
    # Why a role in the params (``@redis``) names nothing for the event's app: every call refuses with it.
    unresolved: str = ""

    def run(
        self,
        argv: Sequence[str],
        *,
        step: str,
        timeout: float,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        inherit: Sequence[str] = (),
    ) -> ProcResult:
        """Start a process through the one ``Runner`` and leave the same bounded audit record for each."""
        res = self.runner.run(argv, timeout=timeout, cwd=cwd, env=env, inherit=inherit)
        self.audit(
            AuditKind.PROC,
            {
                "step": step,
                "argv": list(res.argv),
                "rc": res.returncode,
                "timed_out": res.timed_out,
                "output": res.summary(),
                "duration": round(res.duration, 3),
            },
        )
        return res


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Confirmation:
    """A confirmation probe's verdict on the fault, with one line a human can read."""

    status: Confirm
    detail: str = ""


NOT_HELD = "the fix did not hold"
"""Ends a verify detail when the fix took effect and was undone by the fault within the probe (a restarted
service down again within ``stay_up``): the engine counts it, like a recurrence, toward flapping."""

PROBE_TIMEOUT = 5.0
"""Seconds one process of a confirmation probe may take: it runs before every confirmed fix, so it must be quick."""


def probe_timeout(timeout: float) -> float:
    """The action's own timeout, capped for a probe."""
    return min(timeout, PROBE_TIMEOUT)


class Action(ABC, Generic[SettingsT, StateT]):
    """One remediation. Subclasses set ``name``, register with ``@register`` and implement the hooks.

    The engine calls ``target``, ``check``, ``apply``, ``verify``, ``can_undo``
    and ``undo``, and for a ``confirm: true`` pattern ``confirm`` first. The
    first four (and ``confirm``) resolve the action's settings once, here, and
    refuse naming the config key when the section is missing, then call the
    subclass's ``_target``/``_check``/``_apply``/``_verify`` with them; so an
    action is only its own logic. ``undo`` and ``can_undo`` take only the saved
    state: it must hold everything undo needs, so a fix can still be undone
    after a reload removed the section, or on recovery after a crash.
    """

    name: ClassVar[str]
    reversible: ClassVar[bool] = True
    # Param keys a pattern may give; anything else is a load-time error.
    param_keys: ClassVar[frozenset[str]] = frozenset()
    required_params: ClassVar[frozenset[str]] = frozenset()
    # Taken from ``Action[SettingsT, ...]`` in the class statement.
    settings_type: ClassVar[type[Any]] = object
    # Seconds after the fix during which the old fault's tail (backlog, in-flight requests) still logs;
    # ``actions.<name>.verify_grace`` overrides it, ``engine.verify_grace`` is the floor.
    default_grace: ClassVar[float] = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Action:
                arg = get_args(base)[0]
                if isinstance(arg, type):
                    cls.settings_type = arg

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
        for key, value in params.items():
            role = role_of(value)
            problem = None if role is None else check_role(role)
            if problem is not None:
                raise ParamError(f"{cls.name}.{key}: {problem}")

    def configured(self, ctx: ActionContext) -> SettingsT:
        """The action's settings, or a refusal that says which config key to add."""
        if ctx.unresolved:
            raise ActionRefused(ctx.unresolved)
        settings = ctx.settings
        if settings is None:
            raise ActionRefused(f"{self.name} is not configured: add an actions.{self.name} section to the config")
        if not isinstance(settings, self.settings_type):
            raise TypeError(f"{self.name}: settings are {type(settings).__name__}, not {self.settings_type.__name__}")
        return cast(SettingsT, settings)

    # ------------------------------------------------ what the engine calls

    @final
    def target(self, ctx: ActionContext) -> str:
        """The lock key: two fixes on the same target never run at once."""
        return self._target(ctx, self.configured(ctx))

    @final
    def check(self, ctx: ActionContext) -> None:
        """Raise ActionRefused if this step must not run. Starts no process with hostile input."""
        self._check(ctx, self.configured(ctx))

    @final
    def apply(self, ctx: ActionContext) -> StateT:
        """Make the change; the engine has just called ``check``. Returns the undo state."""
        return self._apply(ctx, self.configured(ctx))

    @final
    def verify(self, ctx: ActionContext, state: StateT) -> VerifyResult:
        """Did the change take?"""
        return self._verify(ctx, self.configured(ctx), state)

    def admits(self, ctx: ActionContext) -> None:
        """Load-time (``healer check``): raise ActionRefused when these literal params name nothing allowlisted.

        Starts no process and reads no target: the default asks for the lock
        key, which every action finds through its allowlist.
        """
        self.target(ctx)

    def review(self, ctx: ActionContext) -> str:
        """Why a human must approve this step before it runs, whatever the pattern says ('' when nothing does).

        Called by the engine before the chain starts, after the preconditions;
        it may read (``git_sync`` fetches and lists what the pull would change)
        but changes nothing the fix would have to undo.
        """
        return ""

    @final
    def confirm(self, ctx: ActionContext) -> Confirmation:
        """Is the fault this step would fix really there? Changes nothing; quick (``probe_timeout``).

        A probe that cannot run (no settings, a param not on the allowlist, a
        process that fails to start) is UNKNOWN: the pattern's threshold then
        decides, and the step's own ``check`` refuses it as it would anyway.
        A hostile param is no verdict: ``HostileValue`` is raised, and the
        engine escalates it as a security refusal before anyone is asked.
        """
        try:
            return self._confirm(ctx, self.configured(ctx))
        except HostileValue:
            raise
        except HealerError as exc:
            return Confirmation(Confirm.UNKNOWN, f"cannot probe: {exc}")
        except OSError as exc:
            return Confirmation(Confirm.UNKNOWN, f"the probe failed: {exc}")

    def can_undo(self, ctx: ActionContext, state: StateT) -> bool:
        """Whether ``undo`` really reverses this step; rollback counts only those as undone."""
        return self.reversible

    def undoable(self, ctx: ActionContext) -> bool:
        """Whether a successful run of this step can be put back (``healer undo``), as far as the config says."""
        return self.reversible

    def shown_argv(self, ctx: ActionContext) -> tuple[str, ...]:
        """The argv this step would run, for the message a human reads (none: the params say it all)."""
        return ()

    def undo(self, ctx: ActionContext, state: StateT) -> None:
        """Reverse ``apply`` from the saved state alone. Irreversible actions leave this as is."""
        return None

    # ------------------------------------------------ what an action implements

    def _target(self, ctx: ActionContext, settings: SettingsT) -> str:
        return f"{self.name}:{ctx.pattern_id}"

    @abstractmethod
    def _check(self, ctx: ActionContext, settings: SettingsT) -> None: ...

    @abstractmethod
    def _apply(self, ctx: ActionContext, settings: SettingsT) -> StateT:
        """Call ``ctx.checkpoint`` with the undo state before changing anything, and return that state."""

    @abstractmethod
    def _verify(self, ctx: ActionContext, settings: SettingsT, state: StateT) -> VerifyResult: ...

    def _confirm(self, ctx: ActionContext, settings: SettingsT) -> Confirmation:
        """The probe; an action without one cannot tell."""
        return Confirmation(Confirm.UNKNOWN, f"{self.name} has no confirmation probe")


REGISTRY: dict[str, type[Action[Any, Any]]] = {}

A = TypeVar("A", bound="type[Action[Any, Any]]")


def register(cls: A) -> A:
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"action {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get_action(name: str) -> type[Action[Any, Any]]:
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
