"""Did the fault come back? Judged by evidence: when an event happened, not when it was read.

A fix is undone only for an event of its incident that happened after the
fix took effect plus a grace period. An event that carries its own time
(journald's realtime stamp, a webhook's time, a log line's leading
timestamp) is judged by it; one that does not, by its arrival. Lines
logged before or during the fix (a backlog being caught up) and the
in-flight tail within the grace never count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from healer.core.errors import HostileValue, ParamError
from healer.core.records import RECURRED, Event
from healer.remedy.base import get_action
from healer.settings.schema import Settings


@dataclass(frozen=True, slots=True)
class Recurrence:
    """The event that undoes a fix, and how long after the fix it happened."""

    event: Event
    after: float  # seconds after the fix finished
    by_own_time: bool

    def detail(self) -> str:
        how = "its own timestamp" if self.by_own_time else "its arrival (no timestamp in the line)"
        return f"{RECURRED}: a matching event {self.after:.0f}s after it finished (by {how})"


def grace_for(settings: Settings, actions: Sequence[str]) -> float:
    """The longest grace of the chain's actions: each one's ``verify_grace``, else the default.

    Never more than half the verify window: a grace as long as the window
    would leave nothing that could count as a recurrence.
    """
    grace = 0.0
    for name in actions:
        configured = getattr(settings.actions.get(name), "verify_grace", None)
        if isinstance(configured, int | float):
            grace = max(grace, float(configured))
            continue
        try:
            own = get_action(name).default_grace
        except ParamError:  # an action that no longer exists: the engine-wide floor only
            own = 0.0
        grace = max(grace, settings.engine.verify_grace, own)
    if not actions:
        grace = settings.engine.verify_grace
    ml = settings.sources.multiline
    if ml.enabled:
        # An assembled event is read only after its last line and a quiet flush_after: a traceback logged
        # before the fix can arrive that much later, so it is backlog, not a recurrence.
        grace = max(grace, 2 * ml.flush_after)
    return min(grace, settings.engine.verify_window / 2)


def event_time(ev: Event, arrived: float) -> tuple[float, bool]:
    """When ``ev`` happened, and whether the source said so."""
    return (ev.happened, True) if ev.happened is not None else (arrived, False)


def recurrence(events: Sequence[Event], finished: float, grace: float, arrived: float) -> Recurrence | None:
    """The first of ``events`` that is evidence the fault is back, or None."""
    for ev in events:
        t, own = event_time(ev, arrived)
        if t > finished + grace:
            return Recurrence(ev, t - finished, own)
    return None


SHOWN = 80
"""How much of a refused hostile value a notice quotes."""


def security_detail(pattern_id: str, refused: HostileValue) -> str:
    """The refused value shortened and escaped (``ascii``: no control characters, no markup tricks)."""
    value = refused.value if len(refused.value) <= SHOWN else refused.value[:SHOWN] + "…"
    shown = ascii(value)
    return f"pattern {pattern_id}: parameter {refused.param} refused the value {shown}: {refused.rule}"
