"""Which of several patterns that matched one event wins: the one incident the event yields.

Kept apart from :mod:`.verdict` so the matcher can pick a winner without importing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol, TypeVar

from healer.core.enums import Approval
from healer.rules.patterns import Pattern


class Tier(StrEnum):
    """Whether a pattern's fix would run on its own, wait for a human, or never run."""

    AUTO = "auto"
    ASK = "ask"
    NEVER = "never"


def tier(pattern: Pattern) -> Tier:
    if not pattern.fixable:
        return Tier.NEVER
    return Tier.ASK if pattern.approval is Approval.ASK else Tier.AUTO


_TIER_RANK = {Tier.AUTO: 0, Tier.ASK: 1, Tier.NEVER: 2}


class _Hit(Protocol):
    @property
    def pattern(self) -> Pattern: ...


H = TypeVar("H", bound=_Hit)


def winner(hits: Iterable[H]) -> H | None:
    """The most specific hit: a pattern with a fix beats a notify-only one, then the more severe, then file order.

    ``supersedes`` has already removed the generic patterns a specific one names (``Matcher``).
    """
    return min(hits, key=lambda h: (_TIER_RANK[tier(h.pattern)], h.pattern.severity.rank), default=None)
