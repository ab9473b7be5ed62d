"""Pure byte-level helpers of the tailer: cutting lines, a file's identifying head.

Nothing here keeps state or touches the tailer's bookkeeping, so each function
can be fuzzed on its own (``fuzz/fuzz_split_lines.py``) and a failed sink leaves
no trace: the caller applies the results only after the sink accepted them.
"""

from __future__ import annotations

import hashlib
import os

HEAD_BYTES = 256
"""How much of a file's first line identifies it (copytruncate / inode-reuse check)."""


def head_hash(head: bytes | None) -> str:
    """Hash of a file's first line (capped at ``HEAD_BYTES``); '' when not known yet."""
    if not head:
        return ""
    return hashlib.blake2b(head, digest_size=16).hexdigest()


def read_head(fd: int) -> bytes | None:
    """The file's first line including its newline, capped at ``HEAD_BYTES``.

    ``None`` while the first line is still incomplete and shorter than the cap,
    because such a head is not stable yet (the writer is still appending to it).
    """
    data = os.pread(fd, HEAD_BYTES, 0)
    nl = data.find(b"\n")
    if nl >= 0:
        return data[: nl + 1]
    if len(data) == HEAD_BYTES:
        return data
    return None


def head_of(first: bytes) -> bytes | None:
    """``read_head`` on bytes already read from offset 0."""
    nl = first.find(b"\n", 0, HEAD_BYTES)
    if nl >= 0:
        return first[: nl + 1]
    if len(first) >= HEAD_BYTES:
        return first[:HEAD_BYTES]
    return None


def split_lines(
    buf: bytes, skipping: bool, data: bytes, scan: int, pos: int, max_line: int
) -> tuple[bytes, int, int, bytes, bool]:
    """Cut ``buf + data`` into complete lines; pure, so a failed sink leaves no trace.

    ``buf`` holds bytes read from ``pos`` that do not end in a newline yet.  When
    ``skipping`` is set we are inside an over-long line: ``buf`` is its first
    ``max_line`` bytes and every byte up to ``scan`` (where ``data`` starts) is
    known to be part of it.  Returns ``(out, new_pos, cut, new_buf, new_skipping)``
    where ``out`` is the complete lines to hand out and ``new_pos`` the file
    offset just after the last consumed newline.

    Over-long lines are found with ``rfind`` over windows of ``max_line + 1``
    bytes, so a 1 MiB chunk of ordinary lines costs a handful of C-level scans,
    not one Python iteration per line.
    """
    parts: list[bytes] = []
    cut = 0
    new_pos = pos
    if skipping:
        nl = data.find(b"\n")
        if nl < 0:
            return b"", pos, 0, buf, True
        parts.append(buf + b"\n")
        cut = 1
        work = data[nl + 1 :]
        base = scan + nl + 1
        new_pos = base
    else:
        work = buf + data if buf else data
        base = pos
    last = work.rfind(b"\n")
    end = 0
    if last >= 0:
        end = last + 1
        seg = 0
        i = 0
        while end - i > max_line + 1:
            k = work.rfind(b"\n", i, i + max_line + 1)
            if k >= 0:
                i = k + 1
                continue
            # The line starting at i has more than max_line bytes before its newline.
            if seg < i:
                parts.append(work[seg:i])
            parts.append(work[i : i + max_line] + b"\n")
            cut += 1
            i = work.find(b"\n", i + max_line) + 1
            seg = i
        if seg < end:
            parts.append(work[seg:end])
        new_pos = base + end
    tail = work[end:]
    if len(tail) > max_line:
        return b"".join(parts), new_pos, cut, tail[:max_line], True
    return b"".join(parts), new_pos, cut, tail, False


def last_line_end(fd: int, size: int) -> int:
    """Offset just after the last newline before ``size`` (0 if none): where a catch-up skip resumes."""
    step = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - step)
        data = os.pread(fd, end - start, start)
        nl = data.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0
