"""Pattern lifecycle, shadow to active: ``healer patterns``, ``promote``/``demote``, and "not this" marks.

A new pattern can start in shadow (``mode: shadow``, or ``default_mode: shadow``
at the top of its file): it matches and records what it would have done, but
never acts and never pages. Its figures from real traffic (``store/lifecycle.py``)
say when it has earned trust; the recommendation below is advice only, the
change is always an operator's explicit, audited command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from healer.app.text import Quote, terminal
from healer.core.enums import PatternMode
from healer.core.errors import HealerError
from healer.rules.patterns import Pattern
from healer.settings.lifecycle import LifecycleSettings
from healer.store.db import ModeOverride, PatternFigures, Store


class Advice(StrEnum):
    PROMOTE = "promote"
    DEMOTE = "demote"


@dataclass(frozen=True, slots=True)
class PatternRow:
    pattern: Pattern
    mode: PatternMode  # in effect: the operator's override, else the file's
    override: ModeOverride | None
    figures: PatternFigures
    advice: Advice | None
    why: str


@dataclass(frozen=True, slots=True)
class PatternsReport:
    rows: tuple[PatternRow, ...]
    rules: LifecycleSettings


@dataclass(frozen=True, slots=True)
class MarkResult:
    incident_id: int
    pattern_id: str
    new: bool  # False: the incident was marked already (counted once)
    wrong: int  # the pattern's "not this" marks now


class LifecycleError(HealerError):
    """An unknown pattern or incident: one line, exit 2."""


def advise(mode: PatternMode, f: PatternFigures, rules: LifecycleSettings) -> tuple[Advice | None, str]:
    """Promotion: enough matches and no "not this" mark. Demotion: too many fixes undone or rejected."""
    if mode is PatternMode.SHADOW:
        if f.wrong:
            return None, f"{f.wrong} match(es) marked not this"
        if f.matches >= rules.promote_matches:
            return Advice.PROMOTE, f"{f.matches} matches (>= {rules.promote_matches}), none marked not this"
        return None, f"{f.matches}/{rules.promote_matches} matches before a promotion is recommended"
    tried = f.attempted + f.rejected
    bad = f.undone + f.rejected
    if tried and bad / tried > rules.demote_rate:
        return Advice.DEMOTE, f"{bad} of {tried} fixes undone or rejected (> {rules.demote_rate:.0%})"
    return None, ""


def report(store: Store, patterns: Sequence[Pattern], rules: LifecycleSettings) -> PatternsReport:
    figures = store.pattern_figures()
    overrides = store.mode_overrides()
    rows = []
    for p in patterns:
        o = overrides.get(p.id)
        mode = o.mode if o is not None else p.mode
        f = figures.get(p.id, PatternFigures())
        advice, why = advise(mode, f, rules)
        rows.append(PatternRow(p, mode, o, f, advice, why))
    return PatternsReport(tuple(rows), rules)


def set_mode(
    store: Store, patterns: Mapping[str, Pattern], pattern_id: str, mode: PatternMode, actor: str, why: str, now: float
) -> str:
    """Promote (``active``) or demote (``shadow``) one pattern; the answer a human reads."""
    p = patterns.get(pattern_id)
    if p is None:
        raise LifecycleError(f"no pattern {pattern_id!r} is loaded; `healer patterns` lists them")
    o = store.mode_overrides().get(pattern_id)
    was = o.mode if o is not None else p.mode
    if was is mode:
        return f"{pattern_id} is already {mode.value}; nothing changed"
    store.set_mode(pattern_id, mode, was, actor, why, now)
    effect = (
        "it now acts as its file says (fixes, approvals, notices)"
        if mode is PatternMode.ACTIVE
        else "it now only records what it would do, and its news waits for the digest"
    )
    return f"{pattern_id}: {was.value} -> {mode.value} (audited, kept in the state dir); {effect}"


def mark_wrong(store: Store, incident_id: int, actor: str, now: float) -> MarkResult:
    inc = store.incident(incident_id)
    if inc is None:
        raise LifecycleError(f"no incident #{incident_id}")
    new = store.mark_wrong(incident_id, inc.pattern_id, actor, now)
    wrong = store.pattern_figures().get(inc.pattern_id, PatternFigures()).wrong
    return MarkResult(incident_id, inc.pattern_id, new, wrong)


def mark_text(m: MarkResult, quote: Quote = terminal) -> str:
    if not m.new:
        return f"incident #{m.incident_id} was already marked not this ({quote(m.pattern_id)})"
    return (
        f"incident #{m.incident_id} marked not this: {quote(m.pattern_id)} now has {m.wrong} wrong mark(s)"
        " and will not be recommended for promotion"
    )


def patterns_text(r: PatternsReport, quote: Quote = terminal) -> str:
    """One line per pattern: mode, figures, and the recommendation with its reason."""
    shadow = sum(1 for x in r.rows if x.mode is PatternMode.SHADOW)
    lines = [
        f"Patterns: {len(r.rows)} ({len(r.rows) - shadow} active, {shadow} shadow)",
        "  mode    matches incidents would-fix attempted held undone rejected not-this  pattern",
    ]
    advice = []
    for x in sorted(r.rows, key=lambda x: (x.mode is not PatternMode.SHADOW, -x.figures.matches, x.pattern.id)):
        f = x.figures
        by = " (operator)" if x.override is not None else ""
        lines.append(
            f"  {x.mode.value:<7} {f.matches:>7} {f.incidents:>9} {f.would_fix:>9} {f.attempted:>9} {f.held:>4}"
            f" {f.undone:>6} {f.rejected:>8} {f.wrong:>8}  {quote(x.pattern.id)}{by}"
        )
        if x.advice is not None:
            advice.append(f"  {x.advice.value} {quote(x.pattern.id)}: {x.why} (healer patterns {x.advice.value} ID)")
        elif x.mode is PatternMode.SHADOW and x.figures.matches:
            advice.append(f"  keep {quote(x.pattern.id)} in shadow: {x.why}")
    if advice:
        lines.append("Recommendations:")
        lines.extend(advice)
    return "\n".join(lines)


__all__ = [
    "Advice",
    "LifecycleError",
    "MarkResult",
    "PatternRow",
    "PatternsReport",
    "advise",
    "mark_text",
    "mark_wrong",
    "patterns_text",
    "report",
    "set_mode",
]
