"""Find which lines of a buffer match which patterns, fast and in linear time.

Calling a matcher once per line costs a Python call per line, and lines that
match nothing are ~99 % of a log. So a whole buffer is scanned in one RE2 call
with an alternation of every pattern (captures off, so RE2 can use its DFA).
Each hit is mapped to its line, and only that line goes through an RE2 ``Set``
and the matched patterns' own regexes for named groups. The result is exactly
what per-line matching would give: the buffer scan is only a prefilter, and a
line is reported only if a pattern matches that line on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from healer.core.errors import PatternSetError
from healer.rules.patterns import Pattern, re2_options

_UNANCHORED: Any = re2._Anchor.UNANCHORED


def utf8_clean(data: bytes) -> bytes:
    """Invalid UTF-8 bytes as U+FFFD, as ``match_line`` sees them.

    RE2 runs in UTF-8 mode, where ``.`` matches no invalid byte, so a line
    from a program that logs Latin-1 would otherwise be missed by the buffer
    scan while the same line matches per line (found by fuzz/fuzz_matcher.py).
    Valid input, nearly every chunk, costs one decode on CPython's fast path.
    Offsets in a cleaned buffer shift after the first bad byte; hits carry
    their line, so nothing downstream depends on them.
    """
    if data.isascii():  # most logs: settled with no allocation
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode("utf-8")
    return data


@dataclass(frozen=True, slots=True)
class LineHit:
    start: int  # byte offset of the line in the buffer as scanned (after utf8_clean)
    line: str
    pattern: Pattern
    groups: dict[str, str]


class Matcher:
    def __init__(self, patterns: Sequence[Pattern]) -> None:
        self.patterns = tuple(patterns)
        self._scan: Any = None
        self._set: Any = None
        if not self.patterns:
            return
        opts = re2_options()
        opts.never_capture = True
        # Leftmost-longest finds the same leftmost match *start* as leftmost-first
        # (only the end may differ), and the start is all the scan uses; RE2's DFA
        # runs it ~10 % faster. max_mem keeps the DFA from falling back to the NFA.
        opts.longest_match = True
        opts.max_mem = 256 << 20
        # (?m) so ^ and $ mean line start/end inside the buffer, as they do per line.
        alternation = "|".join(f"(?:{p.regex})" for p in self.patterns)
        try:
            self._scan = re2.compile(f"(?m){alternation}".encode(), opts)
            self._set = re2.Set.SearchSet(re2_options())
            for p in self.patterns:
                self._set.Add(p.regex.encode())
            self._set.Compile()
        except re2.error as exc:
            # Each pattern compiled alone; together they can exceed RE2's memory bound.
            raise PatternSetError(len(self.patterns), str(exc)) from None

    def scan(self, data: bytes) -> Iterator[LineHit]:
        """Yield hits for complete lines in ``data`` (lines end in b'\\n'), in order."""
        scan = self._scan
        if scan is None:
            return
        data = utf8_clean(data)
        pos = 0
        end = len(data)
        # The raw RE2 object: no generator or Match object per hit.
        match = scan._regexp.Match
        unanchored = _UNANCHORED
        while pos < end:
            ms = match(unanchored, data, pos, end)[0][0]
            if ms < 0:
                return
            ls = data.rfind(b"\n", 0, ms) + 1
            le = data.find(b"\n", ms)
            if le < 0:
                le = end
            raw = data[ls:le]
            yield from self._line_hits(ls, raw)
            pos = le + 1

    def _line_hits(self, start: int, raw: bytes) -> Iterator[LineHit]:
        idxs = self._set.Match(raw)
        if not idxs:
            return
        line = raw.decode("utf-8", "replace")
        hits = []
        for i in sorted(idxs):
            p = self.patterns[i]
            groups = p.search(line)
            if groups is not None:
                hits.append(LineHit(start, line, p, groups))
        if len(hits) > 1:
            # One fault, one hit: a specific pattern (local Redis refused)
            # replaces the generic ones it names (connection refused).
            beaten = set().union(*(h.pattern.supersedes for h in hits))
            hits = [h for h in hits if h.pattern.id not in beaten]
        yield from hits

    def match_line(self, line: str) -> list[LineHit]:
        """One line (no newline), e.g. a webhook message or a line pasted into chat."""
        if self._set is None:
            return []
        return list(self._line_hits(0, line.encode("utf-8", "surrogatepass")))

    def match_text(self, text: str) -> list[LineHit]:
        """A multi-line message: every line, first hit per pattern wins."""
        seen: set[str] = set()
        hits = []
        for line in text.splitlines() or [""]:
            for h in self.match_line(line):
                if h.pattern.id not in seen:
                    seen.add(h.pattern.id)
                    hits.append(h)
        return hits
