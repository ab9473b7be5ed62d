"""``healer test-pattern``: a pattern set's examples, a real log's matches, a labelled corpus's scores.

fail2ban-regex for healer. Each function yields the lines the CLI prints,
so the command itself is only argument handling; log text is escaped for
the terminal here (``app.text.terminal``), where it is quoted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from healer.app.lines import event_blocks
from healer.app.text import terminal
from healer.core.errors import HealerError
from healer.rules.assemble import Limits
from healer.rules.matcher import Matcher, TextEvent, utf8_clean
from healer.rules.patterns import Pattern
from healer.rules.verdict import line_verdict


def match_counts(
    fh: BinaryIO, patterns: Sequence[Pattern], max_line: int, limits: Limits | None, samples: int
) -> Iterator[str]:
    """Lines read, then matched lines per pattern with up to ``samples`` of each, then the total."""
    matcher = Matcher(patterns, limits)
    counts: Counter[str] = Counter()
    seen: dict[str, list[str]] = {}
    lines = 0
    for block in event_blocks(fh, max_line, limits):
        lines += block.lines
        for hit in matcher.scan(block.data):
            counts[hit.pattern.id] += 1
            got = seen.setdefault(hit.pattern.id, [])
            if len(got) < samples:
                got.append(hit.focus)
    yield f"\nLines: {lines}; matched lines per pattern:"
    for p in patterns:
        yield f"  {counts[p.id]:>8}  {p.id}"
        for sample in seen.get(p.id, []):
            yield f"            | {terminal(sample[:160])}"
    yield f"Total matches: {sum(counts.values())}"


def verdicts_json(fh: BinaryIO, patterns: Sequence[Pattern], max_line: int, limits: Limits | None) -> Iterator[str]:
    """One JSON object per input line or assembled event: every pattern that matched (family, tier), the winner."""
    matcher = Matcher(patterns, limits)
    number = 0
    for block in event_blocks(fh, max_line, limits):
        data = utf8_clean(block.data)
        by_start: dict[int, TextEvent] = {ev.start: ev for ev in matcher.events(data)}
        start = 0
        while start < len(data):
            ev = by_start.get(start)
            end = data.find(b"\n", start) if ev is None else ev.end
            end = len(data) if end < 0 else end
            first = number + 1
            number += 1 if ev is None else ev.lines
            hits = () if ev is None else ev.hits
            yield json.dumps(line_verdict(first, hits, number))
            start = end + 1


def score_corpus(root: Path, patterns: Sequence[Pattern]) -> tuple[list[str], list[str]]:
    """Precision and recall per family over a labelled corpus: the lines to print, and why the gate fails."""
    from healer.rules.corpus import CorpusError, format_table, load_corpus, score

    try:
        entries = load_corpus(root)
    except (CorpusError, OSError) as exc:
        raise HealerError(f"--corpus {root}: {exc}") from None
    report = score(entries, patterns)
    gate = report.failures()
    lines = [f"\nCorpus {root}: {len(entries)} entries", format_table(report)]
    lines += [f"GATE {terminal(why)}" for why in gate]
    return lines, gate
