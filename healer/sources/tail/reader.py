"""The tailer's per-file state: one open descriptor, and one followed path.

Plain mutable records with no behaviour beyond resetting, so the rotation
helpers can hand a :class:`Reader` back without knowing the tailer.  The flags
are deliberately separate booleans rather than one state enum: ``rotated``,
``announce``, ``skipping`` and ``suspect`` combine freely (a rotated file may
be inside an over-long line while a read raced a truncation), so an enum would
have to spell out every combination.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from healer.core.batch import Chunk


@dataclass(eq=False, slots=True)
class Reader:
    """One open file descriptor being consumed.

    ``pos`` is the committed position (after the last line the sink accepted);
    ``held`` the complete lines read from ``pos`` that are kept back because a
    multi-line event there may still go on (since ``held_since``, monotonic);
    ``scan`` is how far we have read; ``buf`` the unconsumed bytes after
    ``held`` (or, while ``skipping``, the kept prefix of an over-long line).
    """

    fd: int
    ino: int
    dev: int
    pos: int = 0
    scan: int = 0
    buf: bytes = b""
    held: bytes = b""
    held_since: float = 0.0
    skipping: bool = False
    head: bytes | None = None
    rotated: bool = False
    announce: bool = False
    linger_until: float = 0.0  # monotonic deadline while retired; 0 = drain to EOF and close now
    suspect: bool = False  # a read raced a truncation; re-check before reading again

    def reset(self) -> None:
        self.pos = self.scan = 0
        self.buf = self.held = b""
        self.skipping = False
        self.head = None


@dataclass(eq=False, slots=True)
class Follower:
    """A followed path: the file currently at the path plus rotated files still to drain."""

    path: str
    service: str
    cur: Reader | None = None
    retired: list[Reader] = field(default_factory=list)
    pending: tuple[Chunk, Callable[[], None]] | None = None
    literal: bool = True


def unchanged(r: Reader) -> bool:
    """Whether the start of the file is still what we read there (append-only so far)."""
    if r.head is not None:
        return os.pread(r.fd, len(r.head), 0) == r.head
    if r.pos == 0 and (r.held or r.buf):
        first = r.held + r.buf
        return os.pread(r.fd, len(first), 0) == first
    return True
