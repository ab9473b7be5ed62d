"""Bringing one followed path up to date: identity checks, reads, and the sink call.

Positions only ever cover complete lines the sink accepted: the sink is called
*first*, and only when it returns does the in-memory position move (each chunk
carries a ``commit`` closure applied after the sink).  If the sink raises, the
very same chunk is kept on the follower and offered again on the next poll.

A multi-line event that may still go on (a traceback whose last line was just
written) is not handed out: its lines stay in ``Reader.held`` and the position
stays at its first line, so a restart reads it again whole.  It goes out with
the next read that ends it, or as it is after ``flush_after`` of quiet, or
when the file is drained for the last time.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

import structlog

from healer.core.batch import Chunk, Offset
from healer.rules.assemble import Limits, open_tail
from healer.sources.tail.lines import head_hash, head_of, read_head, split_lines
from healer.sources.tail.reader import Follower, Reader, unchanged
from healer.sources.tail.rotation import ROTATE_LINGER, find_copy

log = structlog.get_logger("healer.sources.tail")

DRAINED_MEMORY = 256
"""How many recently drained inodes we remember, so a glob that also matches the
rotated name (``app.log*``) does not re-read a file we already drained."""


class Drainer:
    """Reads followed files and feeds their complete lines to ``sink``, one follower at a time.

    Runs only under the tailer's poll lock.  ``reopen`` opens the file now at a
    follower's path (the tailer decides where to start reading it),
    ``want_rescan`` asks for the globs to be re-expanded, and ``known_paths`` is
    the tailer's set of paths seen before (shared, not copied).
    """

    def __init__(
        self,
        sink: Callable[[Chunk], None],
        *,
        max_line: int,
        chunk_bytes: int,
        known_paths: set[str],
        reopen: Callable[[Follower], None],
        want_rescan: Callable[[], None],
        stopping: Callable[[], bool],
        monotonic: Callable[[], float],
        limits: Limits | None = None,
        flush_after: float = 1.0,
    ) -> None:
        self._sink = sink
        self._limits = limits
        self._flush_after = flush_after
        self._max_line = max_line
        self._chunk_bytes = chunk_bytes
        self._known_paths = known_paths
        self._reopen = reopen
        self._want_rescan = want_rescan
        self._stopping = stopping
        self._monotonic = monotonic
        self.lines_cut = 0
        """Lines cut at ``max_line`` (sink-accepted only)."""
        self.unfinished: set[str] = set()
        """Paths whose live file has more to read than the chunk handed out this turn."""
        self.drained: dict[tuple[int, int], tuple[int, str]] = {}
        """``(dev, inode) -> (position, head hash)`` of recently drained rotated files."""

    def service(self, f: Follower) -> bool:
        """Bring one followed path up to date, or by one chunk of its live file (then its path is
        in ``unfinished``); False (and stop) at the first sink failure."""
        self.unfinished.discard(f.path)
        if f.pending is not None:
            chunk, commit = f.pending
            if not self._deliver(f, chunk, commit):
                return False
        for _ in range(3):  # more than one round only when a read raced a truncation
            self._check_identity(f)
            while f.retired:
                r = f.retired[0]
                final = not self._lingers(f, r)
                if not self._read(f, r, final=final):
                    return False
                if not final:
                    return True  # the writer may still append to it; the new file waits
                f.retired.pop(0)
                self._remember_drained(r)
                os.close(r.fd)
            r2 = f.cur
            if r2 is None:
                return True
            r2.suspect = False
            if not self._read(f, r2, final=False):
                return False
            if not r2.suspect:
                break
        else:
            return True
        if r2.held and self._monotonic() - r2.held_since >= self._flush_after and not self._flush(f, r2):
            return False
        if r2.announce:
            # Persist a new position with no lines (rotation to an empty file, catch-up skip).
            empty = self._chunk(f, r2, b"", r2.pos, r2.pos, 0)

            def commit() -> None:
                r2.announce = r2.rotated = False

            return self._deliver(f, empty, commit)
        return True

    def flush_due(self, f: Follower) -> float | None:
        """When the held event of ``f`` goes out as it is (monotonic), None when nothing is held."""
        r = f.cur
        return r.held_since + self._flush_after if r is not None and r.held else None

    def _flush(self, f: Follower, r: Reader) -> bool:
        """Hand out the held event as it is: its writer has been quiet for ``flush_after``."""
        held = r.held
        chunk = self._chunk(f, r, held, r.pos, r.pos + len(held), 0)

        def commit() -> None:
            r.pos += len(held)
            r.held = b""

        return self._deliver(f, chunk, commit)

    def _check_identity(self, f: Follower) -> None:
        """Detect rename/delete rotation and truncation of the file at ``f.path``."""
        r = f.cur
        if r is None:
            if f.path in self._known_paths or f.retired:
                self._reopen(f)
            return
        try:
            st = os.stat(f.path)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                log.info("tail_file_gone", path=f.path)
                self._retire(f)
            self._want_rescan()
            return
        if not stat.S_ISREG(st.st_mode):
            self._retire(f, linger=False)  # nobody reopens a directory as a log
            self._want_rescan()
            return
        if (st.st_ino, st.st_dev) != (r.ino, r.dev):
            log.info("tail_rotated", path=f.path, old_inode=r.ino, new_inode=st.st_ino)
            self._retire(f)
            self._reopen(f)
            if f.cur is None:
                self._want_rescan()
            return
        size = os.fstat(r.fd).st_size
        # A truncate-and-rewrite can regrow past our position before we look, with
        # the same size and (coarse clock) the same mtime, so compare the head every
        # time: one pread of at most HEAD_BYTES.
        truncated = size < r.scan or not unchanged(r)
        if truncated:
            log.info("tail_truncated", path=f.path, position=r.pos, size=size)
            copy = find_copy(f.path, head_hash(r.head), r.pos, exclude=(r.dev, r.ino))
            if copy is not None:
                f.retired.append(copy)
            r.reset()
            r.rotated = r.announce = True

    def _retire(self, f: Follower, *, linger: bool = True) -> None:
        """The path no longer names our file: keep its fd to drain it before anything else."""
        if f.cur is not None:
            if linger:
                f.cur.linger_until = self._monotonic() + ROTATE_LINGER
            f.retired.append(f.cur)
            f.cur = None

    def _lingers(self, f: Follower, r: Reader) -> bool:
        """Whether a retired file may still receive lines (see ``ROTATE_LINGER``)."""
        if not r.linger_until or self._stopping() or self._monotonic() >= r.linger_until:
            return False
        return f.cur is None or os.fstat(f.cur.fd).st_size == 0

    def _remember_drained(self, r: Reader) -> None:
        self.drained[(r.dev, r.ino)] = (r.pos, head_hash(r.head))
        while len(self.drained) > DRAINED_MEMORY:
            del self.drained[next(iter(self.drained))]

    def _read(self, f: Follower, r: Reader, *, final: bool) -> bool:
        """Hand out everything readable from ``r``; False if the sink failed.

        For the live file we read up to the size seen when we started (so a fast
        writer cannot starve other files); a rotated file (``final``) is read to
        EOF and a last line without a newline is handed out with one, since its
        writer has moved on and will never finish it.
        """
        limit = None if final else os.fstat(r.fd).st_size
        while True:
            n = self._chunk_bytes if limit is None else min(self._chunk_bytes, limit - r.scan)
            data = os.pread(r.fd, n, r.scan) if n > 0 else b""
            if data and not final and r.scan > 0 and not unchanged(r):
                # Truncated and rewritten between our identity check and this read:
                # these bytes belong to the new content at a stale offset.  Drop them;
                # the caller re-checks and restarts from 0.
                r.suspect = True
                return True
            if not data:
                if final and (r.buf or r.held):
                    out = r.held + (r.buf + b"\n" if r.buf else b"")
                    cut = 1 if r.skipping and r.buf else 0
                    chunk = self._chunk(f, r, out, r.pos, r.scan, cut)
                    end = r.scan

                    def commit_tail(r: Reader = r, end: int = end) -> None:
                        r.pos = end
                        r.buf = r.held = b""
                        r.skipping = r.rotated = r.announce = False

                    return self._deliver(f, chunk, commit_tail)
                return True
            base = r.pos + len(r.held)
            out, new_pos, cut, new_buf, new_skip = split_lines(r.buf, r.skipping, data, r.scan, base, self._max_line)
            new_scan = r.scan + len(data)
            if new_pos == base:
                r.buf, r.skipping, r.scan = new_buf, new_skip, new_scan
                continue
            if r.head is None:
                # From the bytes we split, not a second read that could see newer content.
                start = r.held + (r.buf if r.skipping else r.buf + data)
                r.head = head_of(start) if r.pos == 0 else None
                if r.head is None:
                    r.head = read_head(r.fd)
            full = r.held + out if r.held else out
            # A cut line is shorter than its span in the file, so the held bytes would no longer
            # map back to an offset: with one in this read nothing is held (long lines are rare).
            hold = not final and self._limits is not None and cut == 0
            give = open_tail(full, self._limits) if hold and self._limits is not None else len(full)
            now = self._monotonic()
            if give == 0:
                # All one event that may still go on: nothing to hand out, nothing to persist yet.
                r.held, r.held_since = full, now
                r.buf, r.skipping, r.scan = new_buf, new_skip, new_scan
                continue
            end = new_pos - (len(full) - give)
            chunk = self._chunk(f, r, full[:give], r.pos, end, cut)

            def commit(
                r: Reader = r,
                p: int = end,
                h: bytes = full[give:],
                b: bytes = new_buf,
                s: bool = new_skip,
                sc: int = new_scan,
                t: float = now,
            ) -> None:
                r.pos, r.held, r.buf, r.skipping, r.scan = p, h, b, s, sc
                r.held_since = t
                r.rotated = r.announce = False

            if not self._deliver(f, chunk, commit):
                return False
            if limit is not None and r.scan < limit:
                # One chunk per turn: a flooded file yields to the others (round robin in the
                # tailer's poll), so a quiet file's new line waits one chunk, not the whole flood.
                self.unfinished.add(f.path)
                return True

    def _chunk(self, f: Follower, r: Reader, data: bytes, start: int, end: int, cut: int) -> Chunk:
        off = Offset(f.path, r.ino, r.dev, end, head_hash(r.head) if end else "")
        return Chunk(f.path, f.service, data, start, off, cut, r.rotated)

    def _deliver(self, f: Follower, chunk: Chunk, commit: Callable[[], None]) -> bool:
        """Call the sink, and only then advance; on failure keep the chunk to offer again."""
        retry = f.pending is not None
        try:
            self._sink(chunk)
        except Exception as exc:
            f.pending = (chunk, commit)
            # Once per failure streak (disk full, database locked): not once per poll.
            if retry:
                log.debug("tail_sink_failed_again", path=f.path, start=chunk.start, error=str(exc))
            else:
                log.exception("tail_sink_failed", path=f.path, start=chunk.start, bytes=len(chunk.data))
            return False
        if retry:
            log.info("tail_sink_recovered", path=f.path, start=chunk.start)
        f.pending = None
        commit()
        self.lines_cut += chunk.cut_lines
        return True
