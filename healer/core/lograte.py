"""A log budget: at most ``per_window`` lines of one kind per window, the rest counted.

A flood of distinct incidents is one log line per notice (1M lines gave a
166 MB daemon log, issue 19 #9). Lines over the budget are dropped and
counted; the next line the budget allows carries that count, so the log
says how much it left out without a timer of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LogBudget:
    per_window: int = 20
    window: float = 60.0
    _start: float = field(default=float("-inf"), init=False)
    _used: int = field(default=0, init=False)
    _held: int = field(default=0, init=False)

    def spend(self, now: float) -> int | None:
        """None: do not log this one. Otherwise log it, with this many left out since the last."""
        if now - self._start >= self.window:
            self._start, self._used = now, 0
        if self._used >= self.per_window:
            self._held += 1
            return None
        self._used += 1
        held, self._held = self._held, 0
        return held
