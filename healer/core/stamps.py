"""When an event says it happened: a log line's leading timestamp, an ISO-8601 time from a payload.

Cheap on purpose: one anchored regex over the first few dozen characters
of a (hostile) line, no guessing of exotic formats. What it reads is
ISO-8601 (``2026-12-02T06:21:12.123Z``, ``+01:00``) and the logging
default ``2026-12-02 06:21:12,123``, optionally in ``[...]``; a time
without a zone is the host's local time, as the logger wrote it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

# The stdlib ``re`` is fine here: anchored, no nested repetition, and fed at most HEAD characters.
LEADING = re.compile(
    r"^\[?(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s?(Z|[+-]\d{2}:?\d{2})?(?![\d:])",
    re.ASCII,
)
HEAD = 48


def _zone(raw: str | None) -> timezone | None:
    if raw is None:
        return None
    if raw == "Z":
        return UTC
    sign = -1 if raw[0] == "-" else 1
    digits = raw[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def leading_time(line: str) -> float | None:
    """The epoch time a line starts with, or None when it starts with none this module reads."""
    m = LEADING.match(line[:HEAD])
    if m is None:
        return None
    g = m.groups()
    base = _second(g[:6], g[7])
    if base is None:
        return None
    micro = int((g[6] or "0").ljust(6, "0")[:6])
    # Exactly what datetime.timestamp() computes, from the whole second (cached: a storm repeats it).
    if g[7] is None:
        return base + micro / 1e6  # a naive datetime is local time, which is what a logger without %z wrote
    return (base * 10**6 + micro) / 10**6


@lru_cache(maxsize=1024)
def _second(fields: tuple[str, ...], zone: str | None) -> int | None:
    """The epoch second of a leading time (int: the naive case is mktime's, the aware one exact)."""
    year, month, day, hour, minute, second = (int(f) for f in fields)
    try:
        t = datetime(year, month, day, hour, minute, second, tzinfo=_zone(zone))
    except ValueError:  # 2026-13-45: not a time after all
        return None
    return int(t.timestamp())


def iso_time(raw: str) -> float | None:
    """A payload's ISO-8601 time (``startsAt``, ``datetime``), or None when absent or unreadable."""
    if not raw:
        return None
    return leading_time(raw.strip())
