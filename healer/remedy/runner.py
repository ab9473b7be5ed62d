"""Run one attempt's chain: check, apply (checkpointed), verify each step; on failure roll back.

The runner knows nothing of incidents or the store: it gets the steps and
the attempt's ``Reverter`` and returns how the chain ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from healer.core.enums import Outcome
from healer.core.errors import ActionError, ActionRefused, HealerError, HostileValue
from healer.core.records import StepResult
from healer.remedy.base import Action, ActionContext
from healer.remedy.reverter import APPLIED, Reverter


@dataclass(frozen=True, slots=True)
class ChainResult:
    """VERIFYING when every step applied and verified; otherwise how the rollback ended.

    ``hostile`` is the refusal when a step refused a captured value as an
    injection attempt: the engine escalates it as a security notice.
    """

    outcome: Outcome
    detail: str
    steps: tuple[StepResult, ...]
    hostile: HostileValue | None = None


def run_chain(plan: Sequence[tuple[Action, ActionContext]], reverter: Reverter) -> ChainResult:
    results: list[StepResult] = []
    try:
        for action, ctx in plan:
            action.check(ctx)
            state = action.apply(ctx)
            ctx.checkpoint({**state, APPLIED: True})
            vr = action.verify(ctx, state)
            if not vr.ok:
                raise ActionError(f"{action.name}: verify failed: {vr.detail}")
            results.append(StepResult(action.name, Outcome.SUCCEEDED, vr.detail))
    except ActionRefused as exc:
        results.append(StepResult(plan[len(results)][0].name, Outcome.REFUSED, str(exc)))
        outcome = reverter.rollback(results, default=Outcome.REFUSED)
        hostile = exc if isinstance(exc, HostileValue) else None
        return ChainResult(outcome, f"refused: {exc}", tuple(results), hostile)
    except Exception as exc:  # an action failing must never take the daemon down
        detail = str(exc) if isinstance(exc, HealerError) else f"{type(exc).__name__}: {exc}"
        if len(results) < len(plan):
            results.append(StepResult(plan[len(results)][0].name, Outcome.FAILED, detail))
        outcome = reverter.rollback(results, default=Outcome.FAILED)
        return ChainResult(outcome, detail, tuple(results))
    return ChainResult(Outcome.VERIFYING, "applied and verified; watching for recurrence", tuple(results))
