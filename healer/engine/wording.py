"""The one wording of a fix for a human: where it ran, on what, what it ran, how it ended, how to undo it.

Every fix notice (started, succeeded, failed and undone, blocked, expired)
is built here, so a person on a phone always finds the same facts in the same
order: host, service, pattern, target, the change (params after role
resolution, the command's argv; shortened, secret-looking values masked),
the result, and what happens next. Nothing here runs anything.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from healer.core.errors import HealerError
from healer.remedy.base import Action, ActionContext

MAX_CHANGE = 240  # characters of the change shown; the full chain is in `healer explain`
_SECRET_KEY = re.compile(r"(?i)(token|secret|passw|api[_-]?key|auth|credential)")
_SECRET_VALUE = re.compile(r"(?i)((?:token|secret|passw\w*|api[_-]?key|auth)[=:])\S+")


@dataclass(frozen=True, slots=True)
class FixFacts:
    host: str
    service: str
    pattern_id: str
    incident_id: int
    targets: tuple[str, ...]
    change: str  # what the chain runs, e.g. "command(command=ok): true"
    reversible: bool


def shorten(text: str, limit: int = MAX_CHANGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask(key: str, value: str) -> str:
    """A param named like a secret is never shown; a ``token=...`` inside a value neither."""
    if _SECRET_KEY.search(key):
        return "***"
    return _SECRET_VALUE.sub(r"\1***", value)


def step_change(action: Action[Any, Any], ctx: ActionContext) -> str:
    params = ", ".join(f"{k}={mask(k, v)}" for k, v in sorted(ctx.params.items()))
    shown = f"{action.name}({params})"
    try:
        argv = action.shown_argv(ctx)
    except HealerError:
        argv = ()
    if argv:
        shown += ": " + " ".join(mask("", a) for a in argv)
    return shown


def facts_of(
    host: str,
    service: str,
    pattern_id: str,
    incident_id: int,
    plan: Sequence[tuple[Action[Any, Any], ActionContext]],
) -> FixFacts:
    targets = []
    for action, ctx in plan:
        try:
            targets.append(action.target(ctx))
        except HealerError as exc:
            targets.append(f"unresolved ({exc})")
    change = " → ".join(step_change(a, c) for a, c in plan) or "nothing"
    reversible = False
    for action, ctx in plan:
        with contextlib.suppress(HealerError):  # an unconfigured step: the plan's check will say so
            reversible = reversible or action.undoable(ctx)
    return FixFacts(host, service or "-", pattern_id, incident_id, tuple(targets), shorten(change), reversible)


def context_lines(f: FixFacts) -> list[str]:
    return [
        f"host {f.host} · service {f.service} · pattern {f.pattern_id} · incident #{f.incident_id}",
        f"target: {', '.join(f.targets) or '-'}",
        f"change: {f.change}",
    ]


def undo_line(aid: int, f: FixFacts) -> str:
    return f"undo: healer undo {aid}" if f.reversible else "undo: not reversible (nothing to put back)"


def started(aid: int, f: FixFacts, retry: bool = False) -> str:
    """``retry``: the scheduler decided a blocked fix again (busy target, precondition cleared)."""
    head = f"fix #{aid} started" + (" (retry: what blocked it has cleared)" if retry else "")
    return "\n".join([head, *context_lines(f)])


def applied(aid: int, f: FixFacts, window: float) -> str:
    return "\n".join(
        [
            f"fix #{aid} applied; watching {window:g}s for recurrence",
            *context_lines(f),
            "next: succeeded if the error stays away, undone if it comes back",
        ]
    )


def succeeded(aid: int, f: FixFacts, window: float) -> str:
    return "\n".join(
        [f"fix #{aid} succeeded: the error stayed away for {window:g}s", *context_lines(f), undo_line(aid, f)]
    )


_ENDED = {
    "rolled_back": "failed and was rolled back",
    "rollback_failed": "failed and its rollback FAILED",
    "refused": "refused by its own check, nothing ran",
    "failed": "failed",
}


def failed(aid: int, f: FixFacts, outcome: str, detail: str, undone: str) -> str:
    why = shorten(detail.strip().rstrip(":").strip())
    head = f"fix #{aid} {_ENDED.get(outcome, outcome)}" + (f": {why}" if why else "")
    return "\n".join([head, *context_lines(f), f"undone: {undone}"])


def undone_text(outcome: str, steps: Sequence[tuple[str, str]]) -> str:
    """What the rollback did, from the steps' outcomes (``steps``: action, outcome)."""
    back = [a for a, o in steps if o == "rolled_back"]
    if outcome == "rollback_failed":
        return "rollback FAILED: a human must check the target"
    if back:
        return "rolled back " + ", ".join(back)
    return "nothing had changed"


def blocked(f: FixFacts, why: str, next_step: str) -> str:
    return "\n".join([f"fix not started: {why}", *context_lines(f), f"next: {next_step}"])


def expired(decision_id: int, pattern_id: str, host: str, service: str, ttl: float, again: str) -> str:
    return "\n".join(
        [
            f"approval #{decision_id} expired after {ttl:g}s unanswered: nothing was run",
            f"host {host} · service {service or '-'} · pattern {pattern_id}",
            f"next: {again}",
        ]
    )


def where(host: str, service: str, pattern_id: str, incident_id: int) -> str:
    return f"host {host} · service {service or '-'} · pattern {pattern_id} · incident #{incident_id}"
