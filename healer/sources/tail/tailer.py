"""The log-file tailer: follows globs of files and hands out complete lines, exactly once.

This is the part of healer that must never lose or duplicate a line across
restarts and log rotations, so the design favours being *provably* right over
being clever:

Threading
    watchdog delivers inotify events on its own observer thread.  That thread
    never reads a file and never calls the sink: it only decides whether the
    event concerns us and then *wakes* the consumer (``on_wakeup()`` supplied
    by the daemon, or an internal worker thread; see :mod:`.wakeup`).  Every
    read, every rotation decision and every ``sink`` call happens inside
    :meth:`FileTailer.poll`, which is serialised by a lock, so the sink is only
    ever called from one thread at a time and always in file order.  A rare
    timer (``rescan_interval``) also wakes the consumer, to catch what inotify
    cannot see (NFS, directories created after start, a sink that failed and
    needs a retry).

Positions
    ``Offset.position`` only ever covers complete lines that the sink accepted
    (:mod:`.drain`), so the engine can persist ``chunk.offset`` in the same
    transaction as the events it derived from the chunk.  If the sink raises,
    the very same chunk is offered again on the next poll.

Rotation detection (each poll, per followed file: one ``stat`` + one ``fstat``)
    * the path now names another inode, or vanished (rename rotation,
      delete-and-recreate): we keep the old file descriptor and keep draining it
      until the new file at the path has data (the writer reopened) or
      ``ROTATE_LINGER`` passed, and only then read the new file from 0;
    * the file shrank below what we read, or its first line changed
      (copytruncate): we look for the copy among siblings (same first line,
      large enough), drain it from our position, then re-read the file from 0.
      The head is compared on every check *and* after every read of the live
      file, so a truncate-and-regrow that races a read is never mistaken for
      appended data (a copy whose first line equals the old one is the one case
      this cannot see);
    * at start-up a stored :class:`Offset` whose inode no longer sits at the path
      is looked up by inode in the same directory (``app.log.1``, dated names...)
      and drained from the stored position before the new file is read from 0
      (:mod:`.rotation`).

Multi-line events
    With ``multiline`` limits, a traceback (libpq error, git output, stack
    trace) that may still go on at the end of a read is held back whole
    (:mod:`.drain`), so the sink always gets whole events and the stored
    offset points at the start of an unfinished one.  The poll thread is
    woken ``flush_after`` after such an event last grew, to hand it out as it is.

No text decoding happens here: lines are bytes, the engine decodes only the
lines a pattern matched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from healer.core.batch import Chunk, Offset
from healer.rules.assemble import Limits
from healer.sources.tail.drain import Drainer
from healer.sources.tail.lines import head_hash, last_line_end, read_head
from healer.sources.tail.reader import Follower, Reader
from healer.sources.tail.rotation import COMPRESSED, find_by_inode, resume
from healer.sources.tail.wakeup import Wakeup
from healer.sources.tail.watch import FileSpec, Glob, Handler, glob_match, make_glob, matches_glob, update_watches

log = structlog.get_logger("healer.sources.tail")


MAX_ROUNDS = 256
"""Round-robin turns (one chunk per file each) in one poll before it ends and asks for the next."""


class FileTailer:
    """Follows the files matched by ``specs`` and feeds complete lines to ``sink``.

    Files that exist at the first scan and have no stored offset are read from
    0 (fail2ban-like: no line is ever skipped silently), unless
    ``max_catchup_age`` > 0 and the file was last modified longer ago than that,
    in which case we start after its last complete line and count the skipped
    bytes in :attr:`skipped_catchup_bytes` (an empty chunk persists that choice).
    Files that appear later are always read from 0.
    """

    def __init__(
        self,
        specs: Sequence[FileSpec],
        offsets: Mapping[str, Offset],
        sink: Callable[[Chunk], None],
        *,
        max_line_bytes: int = 65536,
        chunk_bytes: int = 1 << 20,
        max_catchup_age: float = 0.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_wakeup: Callable[[], None] | None = None,
        rescan_interval: float = 5.0,
        multiline: Limits | None = None,
        flush_after: float = 1.0,
    ) -> None:
        """``clock`` is wall time (compared with file mtimes); ``monotonic`` times rescans, lingering and flushes.

        ``multiline`` None: every line goes out as soon as it is complete (no event is held back).
        """
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be >= 1")
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be >= 1")
        self._globs = [make_glob(s) for s in specs]
        self._stored: dict[str, Offset] = {os.path.abspath(k): v for k, v in offsets.items()}
        self._max_catchup_age = max_catchup_age
        self._clock = clock
        self._monotonic = monotonic
        self._rescan_interval = rescan_interval

        self._lock = threading.RLock()  # serialises poll(): one sink caller at a time
        self._followers: dict[str, Follower] = {}
        self._known_paths: set[str] = set()
        self._problems: dict[str, str] = {}
        self._initial_done = False
        self._next_rescan = 0.0
        self._skipped_catchup = 0

        # Cross-thread signalling (observer/timer thread -> poll thread).
        self._wakeup = Wakeup(on_wakeup, rescan_interval)
        # Per-file reads and sink calls; only ever called under self._lock.
        self._drainer = Drainer(
            sink,
            max_line=max_line_bytes,
            chunk_bytes=chunk_bytes,
            known_paths=self._known_paths,
            reopen=lambda f: self._open_cur(f, False, {}),
            want_rescan=self._wakeup.want_rescan,
            stopping=lambda: self._wakeup.stopping,
            monotonic=monotonic,
            limits=multiline,
            flush_after=flush_after,
        )
        self._observer: Any = None
        self._handler: Handler | None = None
        self._watches: dict[str, tuple[Any, tuple[int, int]]] = {}
        self._followed_snapshot: frozenset[str] = frozenset()
        self._lingering = False

    # ------------------------------------------------------------------ public

    @property
    def lines_cut(self) -> int:
        """Lines cut at ``max_line_bytes`` since construction (sink-accepted only)."""
        return self._drainer.lines_cut

    @property
    def skipped_catchup_bytes(self) -> int:
        """Bytes skipped at start-up because files were older than ``max_catchup_age``."""
        return self._skipped_catchup

    def watched(self) -> list[str]:
        """Paths currently followed (an open file at the path)."""
        with self._lock:
            return sorted(p for p, f in self._followers.items() if f.cur is not None)

    def problems(self) -> list[str]:
        """Current problems, one human-readable line each (``"<path or glob>: <reason>"``)."""
        with self._lock:
            return [f"{k}: {v}" for k, v in sorted(self._problems.items())]

    def start(self) -> None:
        """Start inotify watching and trigger the initial catch-up.

        The catch-up reads happen on the poll thread (the daemon's worker or our
        own), never on the caller's thread, so the one-thread sink contract holds.
        """
        from watchdog.observers import Observer

        if self._observer is not None:
            return
        self._wakeup.reset()
        self._handler = Handler(self._event)
        observer = Observer()
        observer.daemon = True
        self._observer = observer
        observer.start()
        with self._lock:
            self._update_watches()
        self._wakeup.start(self.poll)
        self._wakeup.wake(rescan=True)

    def stop(self) -> None:
        """Stop watching, stop the worker and close every file (idempotent)."""
        self._wakeup.signal_stop()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        self._wakeup.join()
        with self._lock:
            self._watches.clear()
            for f in self._followers.values():
                # Remember where we are, so a later start() of this instance resumes exactly
                # like a restart with persisted offsets would (an un-accepted chunk is re-offered).
                first = f.retired[0] if f.retired else f.cur
                if first is not None:
                    self._stored[f.path] = Offset(f.path, first.ino, first.dev, first.pos, head_hash(first.head))
                for r in [*f.retired, *([f.cur] if f.cur else [])]:
                    with contextlib.suppress(OSError):
                        os.close(r.fd)
                f.retired.clear()
                f.cur = None
            self._followers.clear()
            self._initial_done = False

    def poll(self) -> None:
        """Process everything pending now, synchronously, on the calling thread.

        Costs one ``stat`` and one ``fstat`` per followed file; a file is only
        read when its size or identity changed.  Globs are re-expanded when an
        event asked for it or every ``rescan_interval`` seconds.
        """
        with self._lock:
            rescan = self._wakeup.begin_poll()
            now = self._monotonic()
            if now >= self._next_rescan or self._observer is None:
                # Without an observer (tests, replay) nothing else would ever flag a rescan.
                rescan = True
            failed: set[str] = set()
            # Existing files first: a rename rotation must drain the old inode
            # before a glob that also matches the rotated name sees it.
            for f in list(self._followers.values()):
                if not self._drainer.service(f):
                    failed.add(f.path)
            rescan = self._wakeup.take_rescan() or rescan  # e.g. a followed file just vanished
            if rescan or not self._initial_done:
                self._next_rescan = now + self._rescan_interval
                # Watch first, glob second: a file created in between is then seen by one of them.
                self._update_watches()
                self._rescan()
                for f in list(self._followers.values()):
                    if f.path not in failed:
                        self._drainer.service(f)
            # Round robin until every file is read to where it was: each turn hands out at most one
            # chunk of a file's live content, and every followed file gets a turn (fair ingestion).
            # Bounded, so that a file flooded for ever still lets a poll end (rescans, flush timers).
            rounds = 0
            while self._drainer.unfinished and not self._wakeup.stopping and rounds < MAX_ROUNDS:
                rounds += 1
                for f in list(self._followers.values()):
                    if f.path not in failed and not self._drainer.service(f):
                        failed.add(f.path)
                        self._drainer.unfinished.discard(f.path)
            if self._drainer.unfinished:
                self._wakeup.wake()  # more to read: the next poll follows at once
            self._followed_snapshot = frozenset(self._followers)
            self._lingering = any(f.retired for f in self._followers.values())
            dues = [d for f in self._followers.values() if (d := self._drainer.flush_due(f)) is not None]
            self._wakeup.due_in(min(dues) - self._monotonic() if dues else None)

    def _event(self, paths: Sequence[str], structural: bool, is_directory: bool) -> None:
        """Observer thread: decide cheaply whether an event concerns us, then wake."""
        followed = self._followed_snapshot
        if self._lingering and not structural:
            # Possibly a write to a renamed file we still drain; cheap to check.
            self._wakeup.wake()
            return
        for p in paths:
            if not p:
                continue
            if p in followed:
                self._wakeup.wake(rescan=structural)
                return
            if matches_glob(p, is_directory, self._globs):
                self._wakeup.wake(rescan=True)
                return

    def _update_watches(self) -> None:
        """Re-aim the inotify watches after a rescan (no observer: tests, replay)."""
        if self._observer is not None and self._handler is not None:
            update_watches(self._observer, self._handler, self._globs, self._watches)

    # ------------------------------------------------------------ scanning

    def _rescan(self) -> None:
        """Expand every glob, start following new files, and recompute problems."""
        initial = not self._initial_done
        fresh: dict[str, str] = {}
        seen: set[str] = set()
        for g in self._globs:
            found = False
            for m in sorted(glob.glob(g.pattern)):
                if m.endswith(COMPRESSED):
                    continue
                try:
                    st = os.stat(m)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    fresh[m] = "is a directory, not a file"
                    found = True
                    continue
                if not stat.S_ISREG(st.st_mode):
                    fresh[m] = "not a regular file"
                    found = True
                    continue
                found = True
                if m in seen:
                    continue
                seen.add(m)
                f = self._followers.get(m)
                if f is None:
                    f = Follower(m, g.spec.service, literal=g.literal)
                    self._followers[m] = f
                    self._open_cur(f, initial, fresh)
                elif f.cur is None:
                    self._open_cur(f, False, fresh)
            if not found:
                if not os.path.isdir(g.static_dir):
                    fresh[g.spec.glob] = f"directory {g.static_dir} does not exist"
                elif g.literal:
                    fresh[g.spec.glob] = "file does not exist"
                else:
                    fresh[g.spec.glob] = "no file matches"
        if initial:
            for g in self._globs:
                self._recover_missing(g, seen)
        for path, f in list(self._followers.items()):
            if path not in seen and f.cur is None and not f.retired and f.pending is None:
                del self._followers[path]
        self._initial_done = True
        self._set_problems(fresh)

    def _recover_missing(self, g: Glob, seen: set[str]) -> None:
        """Start-up: a stored path that no longer exists may have been rotated away while
        we were down; drain its old inode now rather than when the path comes back."""
        for path, off in list(self._stored.items()):
            if path in seen or path in self._followers or os.path.lexists(path):
                continue
            if not glob_match(path, g.pattern):
                continue
            del self._stored[path]
            f = Follower(path, g.spec.service, literal=g.literal)
            self._known_paths.add(path)
            old = find_by_inode(path, off)
            if old is not None:
                f.retired.append(old)
                self._followers[path] = f

    def _open_cur(self, f: Follower, initial: bool, problems: dict[str, str]) -> None:
        """Open the file at ``f.path`` and decide where to start reading it."""
        try:
            fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        except PermissionError:
            problems[f.path] = "permission denied"
            return
        except OSError as err:
            problems[f.path] = err.strerror or str(err)
            return
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            problems[f.path] = "not a regular file"
            return
        r = Reader(fd, st.st_ino, st.st_dev)
        stored = self._stored.pop(f.path, None)
        if stored is not None:
            resume(f, r, st, stored)
        elif f.path in self._known_paths:
            r.rotated = r.announce = True  # delete-and-recreate seen across a missing phase
        elif (drained := self._drainer.drained.get((st.st_dev, st.st_ino))) is not None and (
            head_hash(read_head(fd)) == drained[1] and st.st_size >= drained[0]
        ):
            # A glob also matching rotated names: this inode was already drained as
            # another path (the head check rules out a reused inode).
            r.pos = r.scan = drained[0]
            r.head = read_head(fd) if r.pos else None
        elif initial and self._max_catchup_age > 0 and st.st_mtime < self._clock() - self._max_catchup_age:
            r.pos = r.scan = last_line_end(fd, st.st_size)
            r.head = read_head(fd) if r.pos else None
            r.announce = r.pos > 0
            self._skipped_catchup += r.pos
            log.info("tail_catchup_skipped", path=f.path, skipped_bytes=r.pos, mtime=st.st_mtime)
        self._known_paths.add(f.path)
        f.cur = r

    def _set_problems(self, fresh: dict[str, str]) -> None:
        """Replace the problem set, logging each change once (not on every rescan)."""
        for key, reason in fresh.items():
            if self._problems.get(key) != reason:
                log.warning("tail_problem", path=key, reason=reason)
        for key in self._problems.keys() - fresh.keys():
            log.info("tail_problem_cleared", path=key, reason=self._problems[key])
        self._problems = fresh
