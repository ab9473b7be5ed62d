"""Group matches into incidents.

A storm of the same error differs only in timestamps, ids, counters and
addresses; masking those gives one fingerprint, hence one incident. Masking
works on the matched text, not the whole line, so the same fault reported by
a log line (with its timestamp and logger prefix) and by Sentry (bare
message) lands in the same incident. The masks run on RE2, linear on hostile
input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import re2

from healer.core.records import Event
from healer.rules.patterns import Pattern

_MASKS: tuple[tuple[Any, str], ...] = (
    (re2.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<uuid>"),
    (re2.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<ip>"),
    (re2.compile(r"\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}\b"), "<ip6>"),
    (re2.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re2.compile(r"\b[0-9a-fA-F]{12,}\b"), "<id>"),
    (re2.compile(r"\b[0-9a-zA-Z_-]*\d[0-9a-zA-Z_-]*\b"), "<n>"),
    (re2.compile(r"\s+"), " "),
)
MAX_KEY = 512
# The same masks driven through the raw RE2 object on UTF-8 bytes: re2's
# Python-level ``sub`` costs ~25 us per call on a short string (text
# re-encoding, offset decoding, a Match object and a template expansion per
# hit), which made fingerprinting the most expensive step of ingestion.
_RAW_MASKS: tuple[tuple[Any, bytes], ...] = tuple((rx._regexp, repl.encode()) for rx, repl in _MASKS)
_UNANCHORED: Any = re2._Anchor.UNANCHORED


def _sub(raw: Any, repl: bytes, data: bytes) -> bytes:
    """``rx.sub(repl, data)`` for a literal ``repl``, with the same empty-match stepping."""
    match = raw.Match
    end = len(data)
    pos = last = 0
    pieces: list[bytes] = []
    while True:
        s, e = match(_UNANCHORED, data, pos, end)[0]
        if s < 0:
            break
        pieces.append(data[last:s])
        pieces.append(repl)
        last = e
        if pos == end:
            break
        pos = pos + 1 if e == pos else e
    if not pieces:
        return data
    pieces.append(data[last:])
    return b"".join(pieces)


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    out = text[:4096]
    try:
        data = out.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the slow path gives the same answer re2 gives
        for rx, repl in _MASKS:
            out = rx.sub(repl, out)
        return out.strip()[:MAX_KEY]
    for raw, brepl in _RAW_MASKS:
        data = _sub(raw, brepl, data)
    return data.decode("utf-8").strip()[:MAX_KEY]


def fingerprint(pattern: Pattern, groups: Mapping[str, str], event: Event) -> str:
    parts = [pattern.id]
    for key in pattern.group_by:
        if key == "match":
            parts.append(normalise(groups.get("match", "")))
        elif key == "service":
            parts.append(event.service)
        elif key == "host":
            parts.append(event.fields.get("host", ""))
        elif key == "source":
            parts.append(event.source)
        else:
            parts.append(normalise(groups.get(key, "")))
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "replace"), digest_size=10).hexdigest()
    return f"{pattern.id}:{digest}"
