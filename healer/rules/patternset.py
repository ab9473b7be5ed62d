"""The pattern set in effect: the bundled set, the operator's own files on top, minus what is disabled.

The rules, so that no file name's sort order ever decides which pattern wins:

* An own pattern whose id is also a bundled pattern's replaces that one only
  when it says ``override: true``; it takes the bundled pattern's place.
  Without the marker it is an error naming both files and the bundled
  pattern stays.
* ``override: true`` on an id the bundled set does not have is an error (a
  typo, or a bundled pattern renamed since), unless the bundled set is not
  loaded at all: then there is nothing to override and it loads as it is.
* The same id in two own files is an error naming both, and neither loads:
  the bundled pattern of that id, if any, stays in force.
* A disabled id (``patterns_disabled`` in the config) takes the pattern in
  effect out of the set, whichever file it came from; an id no loaded
  pattern has is an error naming the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from healer.core.errors import PatternError

if TYPE_CHECKING:
    from healer.rules.patterns import Pattern


@dataclass(frozen=True)
class Overridden:
    id: str
    bundled: str  # file:line of the bundled pattern replaced
    by: str  # file:line of the own pattern in force


@dataclass(frozen=True)
class Disabled:
    id: str
    where: str  # file:line of the pattern turned off
    bundled: bool


@dataclass(frozen=True)
class FileLoad:
    """One file's patterns as loaded, and whether it is part of the bundled set."""

    path: str
    patterns: tuple[Pattern, ...]
    bundled: bool


@dataclass(frozen=True)
class Kept:
    """A file that failed to load while its last good version stays in force (a live reload only)."""

    path: str
    error: PatternError
    patterns: int  # how many patterns its last good version has


@dataclass(frozen=True)
class LoadResult:
    patterns: tuple[Pattern, ...]
    errors: tuple[PatternError, ...]
    files: tuple[str, ...]
    bundled_files: tuple[str, ...] = ()
    overridden: tuple[Overridden, ...] = ()
    disabled: tuple[Disabled, ...] = ()
    # Each file's version in force (loaded now, or kept), for the next reload; and the ones kept.
    loads: tuple[FileLoad, ...] = ()
    kept: tuple[Kept, ...] = ()


def at(p: Pattern) -> str:
    return f"{p.file}:{p.line}"


def _duplicate(p: Pattern, problem: str) -> PatternError:
    return PatternError(p.file, problem, p.line, p.id)


def effective_set(
    loads: Sequence[FileLoad],
    disabled: Sequence[str] = (),
    config: str = "config",
    errors: Sequence[PatternError] = (),
    files: Sequence[str] = (),
) -> LoadResult:
    """Merge per-file loads (bundled files first, then own files in the order listed) by the rules above."""
    errs = list(errors)
    bundled: dict[str, Pattern] = {}
    for load in (f for f in loads if f.bundled):
        for p in load.patterns:
            if p.id in bundled:
                errs.append(_duplicate(p, f"id {p.id!r} is already defined in {at(bundled[p.id])}"))
            elif p.override:
                errs.append(_duplicate(p, "'override' is for your own pattern files, not the bundled set"))
            else:
                bundled[p.id] = p
    own: dict[str, list[Pattern]] = {}
    for load in (f for f in loads if not f.bundled):
        for p in load.patterns:
            own.setdefault(p.id, []).append(p)
    replaced: dict[str, Pattern] = {}
    added: list[Pattern] = []
    overridden: list[Overridden] = []
    for pid, defs in own.items():
        first = defs[0]
        if len(defs) > 1:
            where = " and ".join(at(p) for p in defs)
            keeps = f"the bundled one ({at(bundled[pid])}) stays" if pid in bundled else "neither is loaded"
            errs.extend(_duplicate(p, f"id {pid!r} is defined in {where}; {keeps}; keep one") for p in defs[1:])
            continue
        if pid in bundled and not first.override:
            errs.append(
                _duplicate(
                    first,
                    f"id {pid!r} is a bundled pattern ({at(bundled[pid])}); add 'override: true' to replace it,"
                    " or give yours another id",
                )
            )
        elif pid in bundled:
            replaced[pid] = first
            overridden.append(Overridden(pid, at(bundled[pid]), at(first)))
        elif first.override and bundled:
            errs.append(
                _duplicate(
                    first,
                    f"'override: true', but the bundled set has no pattern {pid!r}; fix the id or drop 'override'",
                )
            )
        else:
            added.append(first)
    merged = [replaced.get(p.id, p) for p in bundled.values()] + added
    off: list[Disabled] = []
    by_id = {p.id: p for p in merged}
    for i, pid in enumerate(disabled):
        if pid in by_id:
            p = by_id.pop(pid)
            off.append(Disabled(pid, at(p), p.id in bundled and p is bundled[pid]))
        elif pid not in {d.id for d in off}:
            errs.append(
                PatternError(
                    config,
                    f"patterns_disabled[{i}]: {pid!r} is not the id of any loaded pattern;"
                    " use an 'id:' of a pattern file, or remove the entry",
                )
            )
    return LoadResult(
        tuple(p for p in merged if p.id in by_id),
        tuple(errs),
        tuple(files),
        tuple(f.path for f in loads if f.bundled),
        tuple(overridden),
        tuple(off),
    )
