"""Case counts the hostile suites report at the end of the run (``pytest_terminal_summary`` in conftest).

A report is not a test: a ``test_zz_summary`` that only prints, or asserts a sum that holds by
construction, cannot fail, and depends on running last.
"""

from __future__ import annotations

from collections import Counter

TALLIES: dict[str, Counter[str]] = {}


def tally(name: str) -> Counter[str]:
    """The counter reported under ``name``."""
    return TALLIES.setdefault(name, Counter())
