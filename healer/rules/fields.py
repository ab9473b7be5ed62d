"""Parsing helpers for one pattern's keys: RE2 compilation, scalars, durations, examples, family, mode.

Split from ``patterns.py`` so the loader stays one job (a file to a set); every
helper raises ValueError with a plain problem, which the loader puts in context.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

from healer.core.enums import Family, PatternMode
from healer.settings.types import parse_duration


@dataclass(frozen=True)
class Example:
    line: str
    groups: Mapping[str, str] | None = None


def re2_options() -> Any:
    opts = re2.Options()
    opts.max_mem = 64 << 20
    return opts


def compile_re2(src: str, what: str) -> Any:
    # (?m): in an assembled multi-line event ^ and $ mean a line's start and end, as they do on one line.
    try:
        return re2.compile(f"(?m){src}", re2_options())
    except Exception as exc:  # re2 raises its own error type, or ValueError/TypeError
        hint = ""
        if "(?=" in src or "(?!" in src or "(?<" in src.replace("(?P<", ""):
            hint = "; RE2 has no lookahead/lookbehind"
        elif re.search(r"\\[1-9]", src):
            hint = "; RE2 has no backreferences"
        raise ValueError(f"{what} is not a valid RE2 regex: {exc}{hint}") from None


def str_key(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    v = raw.get(key, default)
    if not isinstance(v, str) or (default is None and not v):
        raise ValueError(f"'{key}' must be a non-empty string")
    return v


def duration_key(raw: Any, key: str) -> float:
    """The one duration grammar (healer.settings.types): "-5m", "nan", "inf", "1e3" are refused."""
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ValueError(f"'{key}': {exc}") from None


def strings_key(raw: Any, key: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValueError(f"'{key}' must be a list of strings")
    return list(raw)


def family_of(raw: Any) -> Family:
    try:
        return Family(raw)
    except ValueError:
        known = ", ".join(f.value for f in Family)
        raise ValueError(f"'family' {raw!r} is not a known family; use one of: {known}") from None


def examples_of(raw: Any) -> tuple[Example, ...]:
    examples = []
    examples_raw = raw or []
    if not isinstance(examples_raw, list):
        raise ValueError("'examples' must be a list of lines or {line: ..., groups: {...}}")
    for ex in examples_raw:
        if isinstance(ex, str):
            examples.append(Example(ex))
        elif isinstance(ex, dict) and isinstance(ex.get("line"), str):
            groups = ex.get("groups")
            if groups is not None and not isinstance(groups, dict):
                raise ValueError("an example's 'groups' must be a mapping")
            examples.append(Example(ex["line"], {str(k): str(v) for k, v in (groups or {}).items()}))
        else:
            raise ValueError("'examples' entries must be strings or {line: ..., groups: {...}}")
    return tuple(examples)


def mode_of(raw: Any, what: str) -> PatternMode:
    """``mode`` on a pattern, or ``default_mode`` at the top of its file."""
    try:
        return PatternMode(raw)
    except ValueError:
        raise ValueError(f"'{what}' must be active or shadow, got {raw!r}") from None
