"""Fuzz the buffer matcher: Matcher.scan over arbitrary bytes never raises and finds
exactly what Matcher.match_line finds on each line, with the bundled patterns.

Run: python fuzz/fuzz_matcher.py -max_total_time=300
"""

from __future__ import annotations

import sys

import atheris
from _common import ROOT, seed_args

with atheris.instrument_imports():
    from healer.core.paths import bundled_patterns_dir
    from healer.rules.matcher import Matcher, utf8_clean
    from healer.rules.patterns import load_patterns

LOADED = load_patterns([bundled_patterns_dir()])
assert LOADED.patterns and not LOADED.errors, LOADED.errors
MATCHER = Matcher(LOADED.patterns)


def _key(index: int, hits: list) -> list[tuple[int, str, str, tuple[tuple[str, str], ...]]]:  # type: ignore[type-arg]
    return [(index, h.line, h.pattern.id, tuple(sorted(h.groups.items()))) for h in hits]


def TestOneInput(data: bytes) -> None:
    # Lines are compared by index: scan's offsets are into the buffer after invalid
    # UTF-8 became U+FFFD (healer.rules.matcher.utf8_clean), which may be longer.
    clean = utf8_clean(data)
    got = [
        (clean.count(b"\n", 0, h.start), h.line, h.pattern.id, tuple(sorted(h.groups.items())))
        for h in MATCHER.scan(data)
    ]
    want = []
    start = 0
    for index, raw in enumerate(data.split(b"\n")):
        if start >= len(data) and raw == b"":
            break  # no line after a final newline
        want += _key(index, MATCHER.match_line(raw.decode("utf-8", "replace")))
        start += len(raw) + 1
    if got != want:
        raise AssertionError(f"scan {got!r} != per-line {want!r} for {data!r}")


def main() -> None:
    argv = seed_args(sys.argv, ROOT / "fuzz" / "corpus" / "matcher")
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
