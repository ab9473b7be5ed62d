"""Find which lines of a buffer match which patterns, fast and in linear time.

Calling a matcher once per line costs a Python call per line, and lines that
match nothing are ~99 % of a log. So a whole buffer is scanned in one RE2 call
with an alternation of every pattern (captures off, so RE2 can use its DFA).
Each hit is mapped to its line, and only that line goes through an RE2 ``Set``
and the matched patterns' own regexes for named groups. The result is exactly
what per-line matching would give: the buffer scan is only a prefilter, and a
line is reported only if a pattern matches that line on its own.

The scan also stops on lines that start a multi-line event (a traceback, a
libpq error, git's output, a stack trace: :mod:`.assemble`); the lines that
continue it are matched with it as ONE event, whose text keeps them joined
with "\n". One event yields at most one incident: ``supersedes`` drops the
generic patterns a specific one names, the winner (:mod:`.rank`) is the
incident, and every other pattern that matched is evidence only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from healer.core.errors import PatternSetError
from healer.rules.assemble import STARTERS, TB_HEADER, Limits, extent
from healer.rules.fields import re2_options
from healer.rules.patterns import Pattern
from healer.rules.rank import winner

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
    start: int  # byte offset of the line (or event) in the buffer as scanned (after utf8_clean)
    line: str  # the line, or an assembled event's lines joined with "\n"
    pattern: Pattern
    groups: dict[str, str]

    @property
    def focus(self) -> str:
        """The line(s) the pattern matched: the whole text for one line, the matched lines of an event."""
        text = self.line
        if "\n" not in text:
            return text
        matched = self.groups.get("match", "")
        i = text.find(matched) if matched else -1
        if i < 0:
            return text
        a = text.rfind("\n", 0, i) + 1
        b = text.find("\n", i + len(matched))
        return text[a:] if b < 0 else text[a:b]


@dataclass(frozen=True, slots=True)
class TextEvent:
    """One line, or one assembled multi-line event, and what matched it.

    Offsets are into the scanned buffer: ``start`` of the first line,
    ``last`` of the last line, ``end`` at the last line's newline.
    """

    start: int
    last: int
    end: int
    lines: int
    hits: tuple[LineHit, ...]  # every pattern that matched, after ``supersedes``
    superseded: tuple[LineHit, ...] = ()

    def pick(self, hits: Sequence[LineHit] | None = None) -> tuple[LineHit | None, tuple[str, ...]]:
        """The winner among ``hits`` (default: all) and the ids of every other pattern that matched: evidence."""
        pool = self.hits if hits is None else hits
        best = winner(pool)
        evidence = tuple(h.pattern.id for h in (*self.hits, *self.superseded) if h is not best)
        return best, evidence


class Matcher:
    def __init__(self, patterns: Sequence[Pattern], limits: Limits | None = None) -> None:
        """``limits`` None: every line is its own event (no assembly)."""
        self.patterns = tuple(patterns)
        self.limits = limits
        self._scan: Any = None
        self._set: Any = None
        # Per pattern with no ignore rule: its raw RE2 object and (name, group index) pairs, so a hit's
        # groups come from one Match call on the bytes (~2 µs) instead of google-re2's str search with
        # named groups (~10-15 µs: it re-encodes the line and maps every offset back to characters).
        self._raw: list[tuple[Any, tuple[tuple[str, int], ...]] | None] = [
            None if p.ignore else (p.compiled._regexp, tuple(p.compiled.groupindex.items())) for p in self.patterns
        ]
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
        if limits is not None:
            alternation += f"|{STARTERS}"
        try:
            self._scan = re2.compile(f"(?m){alternation}".encode(), opts)
            self._set = re2.Set.SearchSet(re2_options())
            for p in self.patterns:
                self._set.Add(f"(?m){p.regex}".encode())
            self._set.Compile()
        except re2.error as exc:
            # Each pattern compiled alone; together they can exceed RE2's memory bound.
            raise PatternSetError(len(self.patterns), str(exc)) from None

    def scan(self, data: bytes) -> Iterator[LineHit]:
        """Yield hits for complete lines in ``data`` (lines end in b'\\n'), in order."""
        for ev in self.events(data):
            yield from ev.hits

    def events(self, data: bytes) -> Iterator[TextEvent]:
        """Every event with a hit, and every multi-line event, in order; the end of ``data`` ends an event."""
        scan = self._scan
        if scan is None:
            return
        data = utf8_clean(data)
        pos = 0
        end = len(data)
        limits = self.limits
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
            nxt = le + 1
            if limits is None or nxt >= end or (48 <= data[nxt] <= 57 and data.find(TB_HEADER, ls, le) < 0):
                # The fast path: a line followed by a timestamped one continues nothing (the
                # one exception, a traceback header whose prefix every line repeats, is looked at).
                ev = self._event(ls, ls, le, 1, data[ls:le])
            else:
                x = extent(data, ls, limits, le)
                ev = self._event(ls, x.last, x.end, x.lines, data[ls : x.end])
                le = x.end
            if ev is not None:
                yield ev
            pos = le + 1

    def _event(self, start: int, last: int, end: int, lines: int, raw: bytes, clean: bool = True) -> TextEvent | None:
        """``clean``: ``raw`` is valid UTF-8 (the groups may then be read from the bytes)."""
        idxs = self._set.Match(raw)
        if not idxs:
            return TextEvent(start, last, end, lines, ()) if lines > 1 else None
        text = raw.decode("utf-8", "replace")
        hits = []
        for i in sorted(idxs):
            p = self.patterns[i]
            fast = self._raw[i]
            groups = p.search(text) if fast is None or not clean else _groups(fast[0], fast[1], raw)
            if groups is not None:
                hits.append(LineHit(start, text, p, groups))
        beaten: tuple[LineHit, ...] = ()
        if len(hits) > 1:
            # One fault, one hit: a specific pattern (local Redis refused)
            # replaces the generic ones it names (connection refused).
            names = set().union(*(h.pattern.supersedes for h in hits))
            beaten = tuple(h for h in hits if h.pattern.id in names)
            hits = [h for h in hits if h.pattern.id not in names]
        if not hits and lines == 1:
            return None
        return TextEvent(start, last, end, lines, tuple(hits), beaten)

    def match_line(self, line: str) -> list[LineHit]:
        """One line (no newline), e.g. a webhook message or a line pasted into chat."""
        if self._set is None:
            return []
        raw = line.encode("utf-8", "surrogatepass")
        ev = self._event(0, 0, len(raw), 1, raw, clean=raw.isascii())
        return [] if ev is None else list(ev.hits)

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


def _groups(regexp: Any, names: tuple[tuple[str, int], ...], raw: bytes) -> dict[str, str] | None:
    """What ``Pattern.search`` returns for a pattern with no ignore, read from one raw RE2 call on bytes.

    ``raw`` is valid UTF-8 (``utf8_clean``) and RE2 matches on character
    boundaries, so each decoded span is exactly the ``str`` search's group.
    """
    spans = regexp.Match(_UNANCHORED, raw, 0, len(raw))
    if spans[0][0] < 0:
        return None
    groups = {}
    for name, i in names:
        a, b = spans[i]
        if a >= 0:
            groups[name] = raw[a:b].decode("utf-8", "replace")
    a, b = spans[0]
    groups["match"] = raw[a:b].decode("utf-8", "replace")
    return groups
