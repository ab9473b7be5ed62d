"""What healer would make of one line: every pattern that matched, its family and tier, and the winner.

``healer test-pattern --log FILE --json`` prints this per input line; the
shape is documented in the README and kept stable across versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from healer.core.enums import Approval
from healer.rules.matcher import LineHit
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


def winner(hits: Sequence[LineHit]) -> LineHit | None:
    """The most specific hit: a pattern with a fix beats a notify-only one, then the more severe, then file order.

    ``supersedes`` has already removed the generic patterns a specific one names (``Matcher``).
    """
    if not hits:
        return None
    return min(hits, key=lambda h: (_TIER_RANK[tier(h.pattern)], h.pattern.severity.rank))


def line_verdict(number: int, hits: Sequence[LineHit]) -> dict[str, Any]:
    best = winner(hits)
    return {
        "line": number,
        "matches": [
            {"pattern": h.pattern.id, "family": h.pattern.family.value, "tier": tier(h.pattern).value} for h in hits
        ],
        "winner": best.pattern.id if best is not None else None,
    }
