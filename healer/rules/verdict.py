"""What healer would make of one line or assembled event: every pattern that matched, its family and tier, the winner.

``healer test-pattern --log FILE --json`` prints this per input line, or
once per multi-line event with its first (``line``) and last (``last_line``)
line numbers; the shape is documented in the README and kept stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from healer.rules.matcher import LineHit
from healer.rules.rank import Tier, tier, winner

__all__ = ["Tier", "line_verdict", "tier", "winner"]


def line_verdict(number: int, hits: Sequence[LineHit], last: int | None = None) -> dict[str, Any]:
    best = winner(hits)
    return {
        "line": number,
        "last_line": number if last is None else last,
        "matches": [
            {"pattern": h.pattern.id, "family": h.pattern.family.value, "tier": tier(h.pattern).value} for h in hits
        ],
        "winner": best.pattern.id if best is not None else None,
    }
