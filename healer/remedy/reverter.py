"""The one object that owns undo, after certbot's reverter.

Each step checkpoints what it needs to undo *before* it changes anything
(``ctx.checkpoint``); the stack is persisted with the attempt on every
checkpoint, so a crash mid-apply can still be rolled back. Rollback goes
newest first. The same ``rollback`` serves a failed chain, an undo after a
recurrence, a timed revert (``revert_at``) and crash recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from healer.core.enums import Outcome
from healer.core.records import StepResult
from healer.remedy.base import Action, ActionContext, get_action

log = structlog.get_logger("healer.remedy.reverter")

APPLIED = "_healer_applied"
"""Set in a step's checkpointed state once its ``apply`` returned (crash recovery tells the two apart)."""

Persist = Callable[[Sequence[Mapping[str, Any]]], None]
MakeContext = Callable[[str, Mapping[str, str]], ActionContext]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One step's saved undo state, as persisted with its attempt."""

    step: int
    action: str
    params: Mapping[str, str]
    state: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "action": self.action, "params": dict(self.params), "state": dict(self.state)}

    @classmethod
    def from_json(cls, index: int, raw: Mapping[str, Any]) -> Checkpoint:
        return cls(index, str(raw["action"]), dict(raw["params"]), dict(raw["state"]))


@dataclass(eq=False)
class Reverter:
    """The checkpoint stack of one attempt and the steps that can undo it.

    Mutable on purpose: it grows as the chain runs; nothing else holds it.
    """

    persist: Persist | None = None
    _stack: list[Checkpoint] = field(default_factory=list)
    _steps: dict[int, tuple[Action, ActionContext]] = field(default_factory=dict)

    # -- while a chain runs -------------------------------------------------
    def add_step(self, index: int, action: Action, ctx: ActionContext) -> None:
        self._steps[index] = (action, ctx)

    def checkpoint_for(
        self, index: int, name: str, params: Mapping[str, str]
    ) -> Callable[[Mapping[str, object]], None]:
        """The ``ctx.checkpoint`` of step ``index``: a later call for the same step replaces its entry."""

        def checkpoint(state: Mapping[str, object]) -> None:
            entry = Checkpoint(index, name, dict(params), dict(state))
            if self._stack and self._stack[-1].step == index:
                self._stack[-1] = entry
            else:
                self._stack.append(entry)
            if self.persist is not None:
                self.persist([c.as_json() for c in self._stack])

        return checkpoint

    def revert_at(self) -> float | None:
        """The earliest ``revert_at`` a step asked for (a model fallback until the primary is back)."""
        times = [float(c.state["revert_at"]) for c in self._stack if isinstance(c.state.get("revert_at"), int | float)]
        return min(times) if times else None

    # -- after a restart or for a later undo --------------------------------
    @classmethod
    def restore(cls, saved: Sequence[Mapping[str, Any]], make_ctx: MakeContext) -> Reverter:
        """Rebuild the steps from a persisted stack; each context is made fresh from its params."""
        r = cls()
        for i, raw in enumerate(saved):
            cp = Checkpoint.from_json(i, raw)
            r._stack.append(cp)
            r._steps[i] = (get_action(cp.action)(), make_ctx(cp.action, cp.params))
        return r

    def fully_applied(self, planned: int) -> bool:
        """Every planned step checkpointed and its apply returned."""
        return len(self._stack) == planned > 0 and all(c.state.get(APPLIED) for c in self._stack)

    def still_verifies(self) -> bool:
        for cp in self._stack:
            action, ctx = self._steps[cp.step]
            try:
                if not action.verify(ctx, dict(cp.state)).ok:
                    return False
            except Exception:  # a verify that crashes is a verify that failed
                return False
        return True

    # -- undo -----------------------------------------------------------------
    def rollback(self, results: list[StepResult], default: Outcome) -> Outcome:
        """Undo every step that checkpointed, newest first; ``default`` when none needed undoing."""
        undone = 0
        failed = False
        for cp in reversed(self._stack):
            action, ctx = self._steps[cp.step]
            try:
                reversible = action.can_undo(ctx, dict(cp.state))
            except Exception:
                reversible = action.reversible
            if not reversible:
                continue
            try:
                action.undo(ctx, dict(cp.state))
                undone += 1
                results.append(StepResult(action.name, Outcome.ROLLED_BACK, "undone"))
            except Exception as exc:
                failed = True
                results.append(StepResult(action.name, Outcome.ROLLBACK_FAILED, f"{type(exc).__name__}: {exc}"))
                log.error("undo_failed", action=action.name, error=str(exc))
        if failed:
            return Outcome.ROLLBACK_FAILED
        return Outcome.ROLLED_BACK if undone else default

    def settle_interrupted(self, planned: int) -> tuple[Outcome, str]:
        """Crash recovery: a chain that fully applied and still verifies goes back to watching; else undo.

        A step whose apply never returned was interrupted, whatever its verify would say.
        """
        if self.fully_applied(planned) and self.still_verifies():
            return Outcome.VERIFYING, "recovered after restart: every step verified; watching"
        outcome = self.rollback([], default=Outcome.FAILED)
        return outcome, f"recovered after restart: interrupted, {outcome.value}"
