"""Score patterns against a labelled corpus of real error text.

A corpus is a directory of YAML files, each ``entries: [{text, source, label,
acts?, note?}]``. ``label`` is a :class:`Family` value, or ``none`` for a
near-miss that no family should claim. ``acts: false`` marks an entry of a
family whose automatic fix would be wrong here (another host or port, a
container, a test run). ``text`` may span several lines: it is assembled
into events exactly as the tailer does (:mod:`.assemble`, through the
:class:`Matcher`), and each event counts for the pattern that wins it, as its
incident would; the patterns it beat are evidence and claim nothing.

A restart step that names ``address`` and ``expect`` is checked as the
action checks it, against the address a service has when no app names one
(``127.0.0.1:6379`` for ``@redis.address``): a line naming another port is
claimed by the family but is not an automatic fix, since restart refuses it.

The score is per family: precision and recall over all its patterns, and the
precision of its automatic-fix patterns (remediation and ``approval: auto``)
alone, because a wrong automatic fix is worse than a missed one. The
``unknown`` catch-all (a bare traceback header) only counts for an entry that
no other family claims.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from healer.core.enums import Approval, Family
from healer.rules.assemble import Limits
from healer.rules.matcher import LineHit, Matcher
from healer.rules.patterns import PLACEHOLDER, Pattern
from healer.settings.apps import default_address, same_place
from healer.settings.safeyaml import YamlProblem, item_lines, load_with_node

NONE_LABEL = "none"
ENTRY_KEYS = frozenset({"text", "source", "label", "acts", "note"})


class CorpusError(ValueError):
    """A corpus file is unreadable or an entry is malformed (file, line, what to fix)."""


@dataclass(frozen=True)
class CorpusEntry:
    text: str
    source: str
    label: Family | None  # None: the "none" label, a near-miss
    acts: bool  # False: the family is right but an automatic fix would be wrong
    note: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class EntryResult:
    entry: CorpusEntry
    families: frozenset[Family]  # families that claim the entry
    auto_patterns: tuple[Pattern, ...]  # automatic-fix patterns that matched a line

    @property
    def wrong_auto_fix(self) -> bool:
        """An automatic fix would run where none must (a near-miss, or acts: false)."""
        e = self.entry
        bad_label = e.label is None or not e.acts
        return bool(self.auto_patterns) and (bad_label or any(p.family != e.label for p in self.auto_patterns))


@dataclass(frozen=True)
class FamilyScore:
    family: Family
    n: int  # entries labelled with this family
    claimed: int  # entries the family's patterns claimed
    correct: int  # claimed and labelled so
    auto_claimed: int  # entries where one of its automatic-fix patterns matched
    auto_correct: int  # ... and the fix was right (labelled so, acts not false)

    @property
    def precision(self) -> float | None:
        return self.correct / self.claimed if self.claimed else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def auto_precision(self) -> float | None:
        return self.auto_correct / self.auto_claimed if self.auto_claimed else None


@dataclass(frozen=True)
class CorpusReport:
    results: tuple[EntryResult, ...]
    scores: tuple[FamilyScore, ...]

    def misses(self) -> list[EntryResult]:
        return [r for r in self.results if r.entry.label is not None and r.entry.label not in r.families]

    def false_claims(self) -> list[EntryResult]:
        return [r for r in self.results if r.families - ({r.entry.label} if r.entry.label else set())]

    def wrong_auto_fixes(self) -> list[EntryResult]:
        return [r for r in self.results if r.wrong_auto_fix]

    def failures(self, min_auto_precision: float = 0.98, min_recall: float = 0.85) -> list[str]:
        """Why the corpus gate fails; empty when it passes."""
        out = [
            f"{r.entry.where}: automatic fix {', '.join(p.id for p in r.auto_patterns)} would run on "
            f"{'a near-miss' if r.entry.label is None else 'an entry marked acts: false'}"
            for r in self.wrong_auto_fixes()
        ]
        for s in self.scores:
            if s.auto_precision is not None and s.auto_precision < min_auto_precision:
                out.append(f"{s.family}: automatic-fix precision {s.auto_precision:.3f} < {min_auto_precision}")
            if s.recall is not None and s.recall < min_recall:
                out.append(f"{s.family}: recall {s.recall:.3f} < {min_recall} ({s.n - s.correct} of {s.n} missed)")
        return out


def _entry(raw: Any, file: str, line: int) -> CorpusEntry:
    if not isinstance(raw, dict):
        raise CorpusError(f"{file}:{line}: each entry must be a mapping with text, source and label")
    unknown = sorted(set(raw) - ENTRY_KEYS)
    if unknown:
        raise CorpusError(f"{file}:{line}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(ENTRY_KEYS))}")
    for key in ("text", "source", "label"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise CorpusError(f"{file}:{line}: '{key}' must be a non-empty string")
    label: Family | None = None
    if raw["label"] != NONE_LABEL:
        try:
            label = Family(raw["label"])
        except ValueError:
            known = ", ".join([NONE_LABEL, *(f.value for f in Family)])
            raise CorpusError(f"{file}:{line}: 'label' {raw['label']!r} is not one of: {known}") from None
    acts = raw.get("acts", True)
    if not isinstance(acts, bool):
        raise CorpusError(f"{file}:{line}: 'acts' must be true or false")
    return CorpusEntry(raw["text"], raw["source"], label, acts, str(raw.get("note", "")), file, line)


def load_corpus(root: Path) -> list[CorpusEntry]:
    """Every entry of every ``*.yaml`` file under ``root`` (sorted by path)."""
    files = sorted(root.rglob("*.yaml")) if root.is_dir() else [root]
    if not files:
        raise CorpusError(f"{root}: no corpus files (*.yaml) found")
    entries: list[CorpusEntry] = []
    for path in files:
        try:
            data, node = load_with_node(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(f"{path}: cannot read: {exc}") from None
        except YamlProblem as exc:
            raise CorpusError(f"{path}:{exc.line}: {exc.problem}") from None
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise CorpusError(f"{path}:1: expected a top-level 'entries:' list")
        lines = item_lines(node, "entries")
        for i, raw in enumerate(data["entries"]):
            entries.append(_entry(raw, str(path), lines[i] if i < len(lines) else 0))
    return entries


def _acts(hit: LineHit) -> bool:
    """Whether the hit's automatic fix would run: every step's target check passes with the default addresses."""
    p = hit.pattern
    if not p.steps or p.approval is not Approval.AUTO:
        return False
    for step in p.steps:
        seen, expect = step.params.get("address"), step.params.get("expect", "")
        if seen is None:
            continue
        seen = PLACEHOLDER.sub(lambda m: hit.groups.get(m.group(1), ""), seen)
        want = default_address(expect[1:]) if expect.startswith("@") else expect
        if want and not same_place(seen, want):
            return False
    return True


def classify(entry: CorpusEntry, matcher: Matcher) -> EntryResult:
    """The entry as the daemon sees it: assembled into events, one winner per event."""
    winners = []
    for ev in matcher.events(entry.text.encode("utf-8", "surrogatepass") + b"\n"):
        best, _ = ev.pick()
        if best is not None:
            winners.append(best)
    families = {h.pattern.family for h in winners}
    if len(families) > 1:
        families.discard(Family.UNKNOWN)  # the catch-all only stands in for "nothing else"
    auto = {h.pattern.id: h.pattern for h in winners if _acts(h)}
    return EntryResult(entry, frozenset(families), tuple(auto.values()))


def _score(family: Family, results: Sequence[EntryResult]) -> FamilyScore:
    mine = [r for r in results if family in r.families]
    auto = [r for r in results if any(p.family == family for p in r.auto_patterns)]
    return FamilyScore(
        family=family,
        n=sum(1 for r in results if r.entry.label == family),
        claimed=len(mine),
        correct=sum(1 for r in mine if r.entry.label == family),
        auto_claimed=len(auto),
        auto_correct=sum(1 for r in auto if r.entry.label == family and r.entry.acts),
    )


def score(entries: Iterable[CorpusEntry], patterns: Sequence[Pattern]) -> CorpusReport:
    matcher = Matcher(patterns, Limits())  # the tailer's default bounds (sources.multiline)
    results = tuple(classify(e, matcher) for e in entries)
    return CorpusReport(results, tuple(_score(f, results) for f in Family))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_table(report: CorpusReport) -> str:
    """The per-family table, then the total; what ``healer test-pattern --corpus`` prints."""
    rows = [("family", "n", "claimed", "precision", "recall", "auto", "auto precision")]
    for s in report.scores:
        if s.n or s.claimed:
            rows.append(
                (
                    s.family.value,
                    str(s.n),
                    str(s.claimed),
                    _pct(s.precision),
                    _pct(s.recall),
                    str(s.auto_claimed),
                    _pct(s.auto_precision),
                )
            )
    near = sum(1 for r in report.results if r.entry.label is None)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.append(
        f"{len(report.results)} entries ({near} near-misses), {len(report.misses())} missed, "
        f"{len(report.false_claims())} claimed by a wrong family, "
        f"{len(report.wrong_auto_fixes())} wrong automatic fixes"
    )
    return "\n".join(lines)
