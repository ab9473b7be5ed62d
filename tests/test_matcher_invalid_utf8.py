"""Regression from fuzz/fuzz_matcher.py: a log line with invalid UTF-8 bytes.

Matcher.scan (the tailer's path) runs RE2 in UTF-8 mode over the raw bytes, so
a line holding e.g. Latin-1 bytes is skipped, while Matcher.match_line on the
same line (decoded with U+FFFD replacements) matches. A real error line from a
program that logs Latin-1 would be missed by the daemon. Fixed by cleaning
the buffer to U+FFFD before the scan (healer.rules.matcher.utf8_clean).
"""

from __future__ import annotations

from healer.core.paths import bundled_patterns_dir
from healer.rules.matcher import Matcher
from healer.rules.patterns import load_patterns

# The fuzzer's input, minimised by hand: the middle line is the one scan misses.
CRASH = b"TypeError: x\nTypeError: " + b"\xd0" * 53 + b"f() takes : f() takes 0ven\nTypeError: objeype"


def test_scan_agrees_with_match_line_on_invalid_utf8() -> None:
    m = Matcher(load_patterns([bundled_patterns_dir()]).patterns)
    bad = CRASH.split(b"\n")[1]
    per_line = [h.pattern.id for h in m.match_line(bad.decode("utf-8", "replace"))]
    assert per_line, "the line matches when decoded"
    start = CRASH.index(bad)
    assert [h.pattern.id for h in m.scan(CRASH) if h.start == start] == per_line
