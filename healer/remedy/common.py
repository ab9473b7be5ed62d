"""Small parsing and allowlist-lookup helpers shared by the built-in actions.

Settings come from a human-written YAML file, so durations and sizes accept
the forms people write ("7d", "200M"); every error names the key at fault and
the accepted form, because the message is all an operator sees at reload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from healer.core.errors import ActionRefused, ParamError

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_duration(raw: Any, where: str) -> float:
    """Seconds from ``30``, ``"45s"``, ``"10m"``, ``"12h"``, ``"7d"`` or ``"2w"``."""
    if isinstance(raw, bool):
        raise ParamError(f"{where}: expected a duration like 30, '10m', '7d'")
    if isinstance(raw, int | float):
        if raw < 0:
            raise ParamError(f"{where}: a duration cannot be negative")
        return float(raw)
    if isinstance(raw, str):
        m = _DURATION.match(raw)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ParamError(f"{where}: expected a duration like 30, '10m', '12h' or '7d', got {raw!r}")


def pick(allowlist: Mapping[str, T], wanted: str, where: str) -> tuple[str, T]:
    """The allowlisted entry a (hostile) param names; with one entry, naming it is optional."""
    if not wanted and len(allowlist) == 1:
        wanted = next(iter(allowlist))
    if wanted not in allowlist:
        raise ActionRefused(f"{wanted!r} is not in {where}")
    return wanted, allowlist[wanted]


def parse_size(raw: Any, where: str) -> int:
    """Bytes from ``1048576``, ``"500K"``, ``"200M"``, ``"1G"`` (powers of 1024)."""
    if isinstance(raw, bool):
        raise ParamError(f"{where}: expected a size like 1048576, '200M', '1G'")
    if isinstance(raw, int):
        if raw < 0:
            raise ParamError(f"{where}: a size cannot be negative")
        return raw
    if isinstance(raw, str):
        m = _SIZE.match(raw)
        if m:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])
    raise ParamError(f"{where}: expected a size like 1048576, '500K', '200M' or '1G', got {raw!r}")


def positive_number(raw: Any, where: str, default: float) -> float:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise ParamError(f"{where}: expected a positive number of seconds, got {raw!r}")
    return float(raw)


def mapping(raw: Any, where: str, allowed: Sequence[str] | None = None) -> Mapping[str, Any]:
    """A mapping with string keys; ``allowed`` turns typos into load errors instead of silence."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ParamError(f"{where}: expected a mapping")
    if allowed is not None:
        extra = set(raw) - set(allowed)
        if extra:
            raise ParamError(f"{where}: unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
    return raw


def text(raw: Any, where: str, default: str | None = None) -> str:
    if raw is None and default is not None:
        return default
    if not isinstance(raw, str) or not raw:
        raise ParamError(f"{where}: expected a non-empty string")
    if "\x00" in raw or "\n" in raw:
        raise ParamError(f"{where}: must not contain NUL or newline")
    return raw
