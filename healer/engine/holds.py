"""What confirmation probes found, held per incident for a while, and the probes under way.

A ``confirm: true`` pattern probes before it acts; a storm of lines must not
start a probe per line, so a refutation (or an "unknown") is held for the
pattern's ``confirm_interval`` and a probe under way is marked. A
confirmation is not held: it leads to the one decision it was asked for.

In memory on purpose: after a restart the next line simply probes again,
and the store keeps the decisions that say what each probe found.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from healer.core.enums import Confirm
from healer.remedy.base import Confirmation

PROBING_FOR = 120.0
"""Seconds a probe is taken to be under way at most: a probe job that died frees its incident after this."""
MAX_HELD = 10_000  # incidents remembered; expired entries are dropped first, then the oldest


@dataclass(frozen=True, slots=True)
class Held:
    """The verdict held for an incident (None while its probe runs) and whether a probe is under way."""

    confirmation: Confirmation | None = None
    probing: bool = False


@dataclass(frozen=True, slots=True)
class _Entry:
    confirmation: Confirmation | None  # None: a probe is under way
    until: float


class Holds:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_incident: dict[int, _Entry] = {}
        self._last: dict[int, Confirm] = {}  # the last verdict per incident, to say a refutation once

    def look(self, incident_id: int, now: float) -> Held:
        with self._lock:
            entry = self._by_incident.get(incident_id)
            if entry is None or entry.until <= now:
                self._by_incident.pop(incident_id, None)
                return Held()
            return Held(entry.confirmation, entry.confirmation is None)

    def begin(self, incident_id: int, now: float) -> None:
        """A probe of the incident starts: no other line starts one meanwhile."""
        with self._lock:
            self._trim(now)
            self._by_incident[incident_id] = _Entry(None, now + PROBING_FOR)

    def settle(self, incident_id: int, found: Confirmation, now: float, hold_for: float) -> bool:
        """Record what the probe found; True when the verdict differs from the incident's last one."""
        with self._lock:
            if found.status is Confirm.CONFIRMED:
                self._by_incident.pop(incident_id, None)
            else:
                self._by_incident[incident_id] = _Entry(found, now + hold_for)
            changed = self._last.get(incident_id) is not found.status
            self._last[incident_id] = found.status
            return changed

    def clear(self, incident_id: int) -> None:
        with self._lock:
            self._by_incident.pop(incident_id, None)

    def _trim(self, now: float) -> None:
        if len(self._by_incident) >= MAX_HELD:
            for key in [k for k, e in self._by_incident.items() if e.until <= now] or list(self._by_incident)[:1]:
                del self._by_incident[key]
        while len(self._last) >= MAX_HELD:
            del self._last[next(iter(self._last))]
