"""The matcher reads a hit's groups from the bytes (one raw RE2 call): it must equal the pattern's own search."""

from __future__ import annotations

from healer.core.paths import bundled_patterns_dir
from healer.rules.matcher import Matcher
from healer.rules.patterns import load_patterns


def test_groups_from_bytes_equal_the_patterns_search() -> None:
    patterns = load_patterns([bundled_patterns_dir()], None).patterns
    m = Matcher(patterns)
    lines = [ex.line for p in patterns for ex in p.examples]
    lines += ["2026-11-21 06:00:00,123 ERROR [wörker-é] " + line for line in lines]  # non-ASCII before the match
    checked = 0
    for line in lines:
        for hit in m.match_line(line):
            assert hit.groups == hit.pattern.search(line), (hit.pattern.id, line)
            checked += 1
        for hit in m.scan((line + "\n").encode()):
            assert hit.groups == hit.pattern.search(hit.line), (hit.pattern.id, line)
            checked += 1
    assert checked > 2 * len(patterns)
