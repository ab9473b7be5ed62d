"""A log file as large blocks of whole lines, each line cut at ``max_line`` bytes.

``healer replay`` and ``healer test-pattern --log`` read whole files this
way. Big blocks keep the per-call cost of the matcher and of each store
transaction small next to the scanning itself; the cut keeps memory bounded
by the block size whatever the file holds (one 200 MB line costs one block
and ``max_line`` bytes, not 2 GB), and gives the same lines the tailer would
give the daemon (``sources.max_line_bytes``). :func:`event_blocks` also
keeps a multi-line event that a block boundary would split for the next
block, as the tailer keeps it for its next read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from healer.core.errors import InputError
from healer.core.stamps import HEAD, leading_time
from healer.rules.assemble import Limits, extent, open_tail

BLOCK_BYTES = 8 << 20


@contextmanager
def open_log(path: str) -> Iterator[BinaryIO]:
    """A log file to read, or an ``InputError`` naming it (no traceback for a typo in a path)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the context manager below
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    with fh:
        yield fh


@dataclass(frozen=True, slots=True)
class Block:
    data: bytes  # whole lines, each ending in b"\n"
    lines: int
    cut: int  # lines in ``data`` that were longer than max_line and were cut


def _has_long_line(data: bytes, max_line: int) -> bool:
    """Whether a line of ``data`` (whole lines) is longer than ``max_line``, without splitting it.

    A line longer than ``max_line`` covers a whole aligned window of ``max_line // 2``
    bytes, so one ``find`` per window (about 256 per 8 MiB block, each stopping at the
    first newline) finds every candidate; only those are measured.
    """
    w = max(1, max_line // 2)
    for k in range(0, len(data), w):
        if data.find(b"\n", k, k + w) < 0:
            start = data.rfind(b"\n", 0, k) + 1
            end = data.find(b"\n", k)
            if (len(data) if end < 0 else end) - start > max_line:
                return True
    return False


def _cut_long(data: bytes, max_line: int) -> tuple[bytes, int, int]:
    """``data`` (whole lines) with every line cut to ``max_line`` bytes, its line count, the lines cut."""
    if not _has_long_line(data, max_line):
        # Same count as data.count(b"\n"), ~3x faster: replace() finds newlines with memchr.
        return data, len(data) - len(data.replace(b"\n", b"")), 0
    parts = data.split(b"\n")
    cut = sum(1 for p in parts if len(p) > max_line)
    return b"\n".join(p[:max_line] for p in parts), len(parts) - 1, cut


def line_blocks(fh: BinaryIO, max_line: int, size: int = BLOCK_BYTES) -> Iterator[Block]:
    """Blocks of whole lines; a last line without a newline gets one."""
    rest = b""  # the start of a line whose newline is still to come (at most max_line bytes)
    skipping = False  # inside a line already longer than max_line: drop bytes up to its newline
    pending_cut = 0
    while block := fh.read(size):
        if skipping:
            nl = block.find(b"\n")
            if nl < 0:
                continue
            block = block[nl:]  # keep the newline: it ends the cut line held in ``rest``
            skipping = False
        data = rest + block if rest else block
        end = data.rfind(b"\n") + 1
        whole, rest = data[:end], data[end:]
        if len(rest) > max_line:
            rest, skipping = rest[:max_line], True
            pending_cut += 1
        if whole:
            # A line cut while skipping was counted when it grew too long; here it is max_line long.
            out, lines, cut = _cut_long(whole, max_line)
            yield Block(out, lines, cut + pending_cut)
            pending_cut = 0
    if rest:
        yield Block(rest + b"\n", 1, pending_cut)


def event_blocks(fh: BinaryIO, max_line: int, limits: Limits | None, size: int = BLOCK_BYTES) -> Iterator[Block]:
    """``line_blocks``, but no block ends inside a multi-line event (``limits`` None: no assembly)."""
    if limits is None:
        yield from line_blocks(fh, max_line, size)
        return
    carry, carry_lines = b"", 0
    for block in line_blocks(fh, max_line, size):
        data = carry + block.data if carry else block.data
        lines = carry_lines + block.lines
        cut = open_tail(data, limits)
        carry = data[cut:]
        carry_lines = carry.count(b"\n") if carry else 0  # only the tail: at most one event's bound
        if cut:
            yield Block(data[:cut], lines - carry_lines, block.cut)
    if carry:
        yield Block(carry, carry_lines, 0)


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive events of a block that share one time: the clock a replay sets before ingesting them."""

    at: float | None  # the first event's leading timestamp; None: it had none
    start: int  # offset in the block
    end: int
    undated: int  # events in it whose first line carries no timestamp of its own


def timed_segments(data: bytes, limits: Limits | None) -> Iterator[Segment]:
    """``data`` (whole lines) cut where an event's first line starts with a new time (``core.stamps``).

    The cut is only ever between events, never inside a multi-line one; an
    event without a timestamp of its own stays with the one before it, as a
    daemon reading the log live would have read it at about that time.
    """
    pos, n = 0, len(data)
    start, at, undated = 0, None, 0
    while pos < n:
        end = data.find(b"\n", pos) if limits is None else extent(data, pos, limits).end
        end = n if end < 0 else end
        t = leading_time(data[pos : pos + HEAD].decode("utf-8", "replace"))
        if t is None:
            undated += 1
        elif t != at:
            if pos > start:
                yield Segment(at, start, pos, undated)
            start, at, undated = pos, t, 0
        pos = end + 1
    if n > start:
        yield Segment(at, start, n, undated)
