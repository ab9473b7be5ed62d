"""Triage: an incident's priority, P0 (a human now) to P3 (can wait), as a small table.

The rule, first to last; the result is clamped to P0..P3:

==========================================  =======================
fact                                        priority
==========================================  =======================
the pattern's severity                      critical P0, high P1,
                                            medium P2, low P3
``triage.frequent`` or more matches in the  one step more urgent
last ``triage.window`` (10 in 1h)
the service's ``services.<name>.            ``critical``: one step
criticality``                               more urgent; ``low``:
                                            one step less; ``normal``
                                            (the default): none
==========================================  =======================

So a high-severity fault that repeats on a critical service is P0, a
medium one on a low-criticality service P3. It is recomputed whenever it
is read, so it rises as the incident grows and falls as it quietens. A
pure function: the caller counts the matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from healer.core.enums import Criticality, Priority, Severity
from healer.core.records import Incident
from healer.settings.schema import Settings
from healer.settings.triage import ServiceSettings, TriageSettings
from healer.store.db import Store, Tx

_CRITICALITY_STEP = {Criticality.CRITICAL: -1, Criticality.NORMAL: 0, Criticality.LOW: 1}


@dataclass(frozen=True, slots=True)
class Triage:
    priority: Priority
    why: tuple[str, ...]

    def text(self) -> str:
        return f"{self.priority.value} ({'; '.join(self.why)})"


def triage(
    severity: Severity, matches: int, service: str, services: Mapping[str, ServiceSettings], rules: TriageSettings
) -> Triage:
    """``matches``: the incident's matches in the last ``rules.window`` (counted up to ``rules.frequent``)."""
    rank = severity.rank
    why = [f"{severity.value} severity"]
    if matches >= rules.frequent:
        rank -= 1
        why.append(f"{matches}+ matches in {rules.window:g}s")
    spec = services.get(service)
    criticality = spec.criticality if spec is not None else Criticality.NORMAL
    step = _CRITICALITY_STEP[criticality]
    if step:
        rank += step
        why.append(f"service {service} is {criticality.value}")
    return Triage(Priority.of_rank(rank), tuple(why))


def incident_triage(store: Store, db: Tx, inc: Incident, settings: Settings, now: float) -> Triage:
    """``inc``'s priority now, its matches counted in the store (up to ``triage.frequent``)."""
    rules = settings.triage
    matches = store.count_in_window(db, inc.id, now - rules.window, rules.frequent)
    return triage(inc.severity, matches, inc.service, settings.services, rules)


__all__ = ["Triage", "incident_triage", "triage"]
