"""fail2ban's discipline for patterns: every pattern carries sample lines, and they must behave.

``healer check`` and ``healer test-pattern`` run these; a pattern with no
example, an example that does not match (or captures the wrong groups), or a
counter-example that matches is reported with the pattern's file and line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from healer.rules.patterns import Pattern


@dataclass(frozen=True)
class ExampleFailure:
    pattern: Pattern
    line: str
    problem: str


def check_examples(patterns: Iterable[Pattern]) -> list[ExampleFailure]:
    """fail2ban-style: every pattern carries sample lines, and they must behave."""
    failures = []
    for p in patterns:
        if not p.examples:
            failures.append(ExampleFailure(p, "", "has no examples; add at least one real log line"))
        for ex in p.examples:
            got = p.search(ex.line)
            if got is None:
                failures.append(ExampleFailure(p, ex.line, "example does not match"))
            elif ex.groups:
                for k, want in ex.groups.items():
                    if got.get(k) != want:
                        failures.append(ExampleFailure(p, ex.line, f"group {k!r} is {got.get(k)!r}, expected {want!r}"))
        for line in p.counter_examples:
            if p.search(line) is not None:
                failures.append(ExampleFailure(p, line, "counter-example matches"))
    return failures
