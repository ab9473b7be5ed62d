"""Multi-line events: a traceback, a libpq error with its hint, git's output, a stack trace, as ONE event.

A program reports one fault over several lines: Python prints a traceback
(chained ones joined by "During handling of the above exception..." or "The
above exception was the direct cause..."), libpq puts "Is the server running
on host ..." on the lines after its error, git prints its CONFLICT lines and
then "Automatic merge failed", Java and Node follow the exception line with
"    at ..." frames and "Caused by:". Matched line by line, one fault becomes
several incidents, and a pattern cannot see the context of its line.

A *starter* line (one of the shapes above) opens an event; each kind has its
own rule for which following lines continue it. Nothing else is ever looked
at here: the matcher's one buffer scan finds starters together with pattern
hits (:data:`STARTERS` joins its alternation), so a line that starts no event
costs nothing more than before. Events are bounded by :class:`Limits`.

An event that reaches the end of what was read may still go on. The tailer
and ``healer replay`` ask :func:`open_tail` where such an unfinished event
starts, hand out only what comes before it and keep the rest for the next
read (the stored offset then points at the event's start, so a restart reads
it again whole); the daemon flushes it after ``flush_after`` of quiet.

Lines carrying a docker-compose prefix (``web_1  | ``) are assembled like
bare ones; a traceback header with any other prefix continues with the lines
that repeat that prefix. Pure functions over bytes, no state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from healer.settings.schema import MultilineSettings


@dataclass(frozen=True, slots=True)
class Limits:
    """How large one event may grow; the line that would exceed a bound starts afresh."""

    max_lines: int = 200
    max_bytes: int = 65536

    @classmethod
    def of(cls, s: MultilineSettings) -> Limits | None:
        """The limits ``sources.multiline`` sets; None when assembly is off."""
        return cls(s.max_lines, s.max_bytes) if s.enabled else None


@dataclass(frozen=True, slots=True)
class Extent:
    """Where an event lies in a buffer: ``start`` and ``last`` of its first and last line, ``end`` at its newline."""

    start: int
    last: int
    end: int
    lines: int
    open: bool  # it reached the end of the buffer and the next line may still continue it


class _Kind(Enum):
    PYTHON = "python"
    GROUP = "group"  # a Python 3.11 exception group: every line indented
    INDENTED = "indented"  # libpq: the hint lines are indented
    STACK = "stack"  # Java / Node
    GIT = "git"


# The matcher's buffer scan stops on these besides pattern hits (RE2, (?m) set by the matcher).
# A starter followed by a line that begins with a digit (a timestamp: the next record) is an
# event of one line, which only matters if a pattern hits it; so, except for the traceback
# header (whose prefix every line may repeat), the scan stops on a starter only when its next
# line may continue it. Lines like "... Error: ..." are common in logs, and each stop costs a
# Set match: without this the scan stopped ~4x as often as on pattern hits alone (bench/).
STARTERS = (
    r"Traceback \(most recent call last\):"
    r"|(?:could not connect to server: |connection to server (?:at|on socket) "
    r"|(?:Exception|Error)(?::|$)"
    r"|^(?:[A-Za-z0-9][-A-Za-z0-9_.]*[ ]+\| )?(?:Auto-merging |CONFLICT \(|error: |fatal: |hint: ))"
    r"[^\n]*\n[^0-9]"
)

# The same shapes per line, with Python's re: each runs on one line only, and none can backtrack badly.
TB_HEADER = _TB = b"Traceback (most recent call last):"
_COMPOSE = re.compile(rb"[A-Za-z0-9][-A-Za-z0-9_.]*[ ]+\| ")
_LIBPQ = re.compile(rb"could not connect to server: |connection to server (?:at|on socket) ")
_GIT = re.compile(rb"(?:Auto-merging |CONFLICT \(|error: |fatal: |hint: )")
_STACK = re.compile(rb"(?:Exception|Error)(?::|$)")
_EXC_LINE = re.compile(rb"[A-Za-z_][A-Za-z0-9_.]*(?::|$)")
_CHAIN = (
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
)
_GIT_MORE = (
    b"Auto-merging ",
    b"CONFLICT (",
    b"Automatic merge failed",
    b"error: ",
    b"fatal: ",
    b"hint: ",
    b"warning: ",
    b"Please commit your changes",
    b"Please move or remove",
    b"Aborting",
    b"Recorded preimage",
    b"Removing ",
    b"Merge with strategy",
)
_STACK_MORE = (b"Caused by: ", b"Suppressed: ", b"Emitted 'error' event ", b"}")

# Python's traceback states: frames, the exception line (and its indented message lines),
# a blank line that may lead to a chain sentence, the sentence, the blank line before the next header.
_FRAMES, _EXC, _BLANK1, _SEP, _BLANK2 = range(5)
_KEEP, _MAYBE, _END = range(3)


def _indented(body: bytes) -> bool:
    return body[:1] in (b" ", b"\t")


def starter(line: bytes) -> tuple[_Kind, bytes] | None:
    """The kind of event ``line`` opens and the prefix its continuation lines repeat, or None."""
    i = line.find(_TB)
    if i >= 0:
        if line[:i].endswith(b"Exception Group "):
            m = _COMPOSE.match(line)
            return _Kind.GROUP, m.group() if m else b""
        return _Kind.PYTHON, line[:i]
    m = _COMPOSE.match(line)
    pre = m.group() if m else b""
    body = line[len(pre) :] if pre else line
    if _LIBPQ.search(body):
        return _Kind.INDENTED, pre
    if _GIT.match(body):
        return _Kind.GIT, pre
    if _STACK.search(body):
        return _Kind.STACK, pre
    return None


def _python(state: int, body: bytes) -> tuple[int, int]:
    if state == _FRAMES:
        if _indented(body):
            return _FRAMES, _KEEP
        return (_EXC, _KEEP) if _EXC_LINE.match(body) else (state, _END)
    if state == _EXC:
        if _indented(body) or _LIBPQ.match(body):
            return _EXC, _KEEP  # the exception's own message lines (libpq's hint, its next address)
        return (_BLANK1, _MAYBE) if not body else (state, _END)
    if state == _BLANK1:
        return (_SEP, _KEEP) if body in _CHAIN else (state, _END)
    if body.startswith(_TB):  # _SEP or _BLANK2
        return _FRAMES, _KEEP
    return (_BLANK2, _MAYBE) if state == _SEP and not body else (state, _END)


def _step(kind: _Kind, state: int, body: bytes) -> tuple[int, int]:
    if kind is _Kind.PYTHON:
        return _python(state, body)
    if _indented(body):
        return state, _KEEP
    if kind is _Kind.STACK and body.startswith(_STACK_MORE):
        return state, _KEEP
    if kind is _Kind.GIT and body.startswith(_GIT_MORE):
        return state, _KEEP
    if kind is _Kind.INDENTED and _LIBPQ.match(body):
        return state, _KEEP  # "localhost" tried as ::1, then as 127.0.0.1
    return state, _END


def extent(data: bytes, start: int, limits: Limits, first_end: int = -1) -> Extent:
    """The event whose first line starts at ``start``: one line unless that line is a starter."""
    n = len(data)
    e = first_end if first_end >= 0 else data.find(b"\n", start)
    e = n if e < 0 else e
    st = starter(data[start:e])
    if st is None:
        return Extent(start, start, e, 1, False)
    kind, pre = st
    state = _FRAMES
    end, last, lines = e, start, 1  # confirmed
    t_lines = 1  # confirmed plus tentative (a blank line that may lead to a chain)
    pos = e + 1
    while pos < n:
        le = data.find(b"\n", pos)
        le = n if le < 0 else le
        if t_lines + 1 > limits.max_lines or le - start > limits.max_bytes:
            return Extent(start, last, end, lines, False)
        line = data[pos:le]
        body = line[len(pre) :] if pre and line.startswith(pre) else line
        state, verdict = _step(kind, state, body)
        if verdict == _END:
            return Extent(start, last, end, lines, False)
        t_lines += 1
        if verdict == _KEEP:
            end, last, lines = le, pos, t_lines
        pos = le + 1
    return Extent(start, last, end, lines, True)


def _may_continue(line: bytes) -> bool:
    """Whether ``line`` could be part of an event (a superset of every kind's continuation rule)."""
    m = _COMPOSE.match(line)
    body = line[m.end() :] if m else line
    return (
        not body
        or _indented(body)
        or _TB in body
        or body in _CHAIN
        or body.startswith(_GIT_MORE)
        or body.startswith(_STACK_MORE)
        or _EXC_LINE.match(body) is not None
        or _LIBPQ.match(body) is not None
    )


def open_tail(data: bytes, limits: Limits) -> int:
    """Where an event that may still go on begins in ``data`` (whole lines); ``len(data)`` when none does.

    Only the tail is looked at: from the last line back over lines that could
    continue an event (at most ``max_lines`` / ``max_bytes``, an event's bound),
    then forward from there as the matcher would. A log whose last line is an
    ordinary one costs one or two regex calls.
    """
    n = len(data)
    end = n - 1 if data.endswith(b"\n") else n
    if end <= 0:
        return n
    start = data.rfind(b"\n", 0, end) + 1
    lines = 0
    while True:
        line = data[start:end]
        if not _may_continue(line):
            origin = start if starter(line) is not None else end + 1
            break
        lines += 1
        if start == 0 or lines >= limits.max_lines or n - start >= limits.max_bytes:
            origin = start
            break
        end = start - 1
        start = data.rfind(b"\n", 0, end) + 1
    pos = origin
    while pos < n:
        ext = extent(data, pos, limits)
        if ext.open:
            return pos
        pos = ext.end + 1
    return n
