"""The value types every settings file shares: one grammar for durations, one for sizes.

Config keys, pattern keys, action sections and CLI options (``--since``) all
parse through these, so ``"5m"`` means the same everywhere and a value that
cannot be a duration (negative, NaN, infinite, ``"1e3"``) is refused
everywhere, with the accepted forms in the message.

They are ``Annotated`` pydantic types: a model field typed ``Duration`` is
validated by :func:`parse_duration` and holds seconds as a ``float``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

DURATION_FORMS = "seconds, or a number with ms, s, m, h, d or w (e.g. 30, '90s', '5m', '7d')"
SIZE_FORMS = "bytes, or a number with K, M, G or T (powers of 1024, e.g. 1048576, '200M', '1G')"


def parse_duration(raw: Any) -> float:
    """Seconds from ``30``, ``2.5``, ``"45s"``, ``"10m"``, ``"12h"``, ``"7d"`` or ``"2w"``.

    Raises ValueError (which pydantic reports with the key path) for anything
    else: a bool, a negative or non-finite number, or text of another form.
    """
    if isinstance(raw, bool):
        raise ValueError(f"expected a duration: {DURATION_FORMS}; got {raw!r}")
    if isinstance(raw, int | float):
        if not math.isfinite(raw) or raw < 0:
            raise ValueError(f"a duration must be a finite number >= 0; got {raw!r}")
        return float(raw)
    if isinstance(raw, str):
        m = _DURATION.match(raw)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "").lower()]
    raise ValueError(f"expected a duration: {DURATION_FORMS}; got {raw!r}")


def parse_size(raw: Any) -> int:
    """Bytes from ``1048576``, ``"500K"``, ``"200M"``, ``"1G"`` (powers of 1024)."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a size: {SIZE_FORMS}; got {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise ValueError(f"a size cannot be negative; got {raw!r}")
        return raw
    if isinstance(raw, str):
        m = _SIZE.match(raw)
        if m:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])
    raise ValueError(f"expected a size: {SIZE_FORMS}; got {raw!r}")


def format_size(n: int) -> str:
    """Bytes as the size grammar writes them, to one decimal: ``format_size(1536 * 1024) == "1.5M"``."""
    value, unit = float(n), ""
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            break
        value /= 1024
    return f"{value:.1f}{unit}" if unit else f"{n}B"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, >= 0 and finite, from a number or a string like ``"5m"``."""

ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""Bytes, >= 0, from a whole number or a string like ``"200M"``."""
