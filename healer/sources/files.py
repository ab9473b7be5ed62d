"""Log-file tailer: follows globs of files and hands out complete lines, exactly once.

This is the part of healer that must never lose or duplicate a line across
restarts and log rotations, so the design favours being *provably* right over
being clever:

Threading
    watchdog delivers inotify events on its own observer thread.  That thread
    never reads a file and never calls the sink: it only decides whether the
    event concerns us and then *wakes* the consumer (``on_wakeup()`` supplied
    by the daemon, or an internal worker thread).  Every read, every rotation
    decision and every ``sink`` call happens inside :meth:`FileTailer.poll`,
    which is serialised by a lock, so the sink is only ever called from one
    thread at a time and always in file order.  A rare timer (``rescan_interval``)
    also wakes the consumer, to catch what inotify cannot see (NFS, directories
    created after start, a sink that failed and needs a retry).

Positions
    ``Offset.position`` only ever covers complete lines that the sink accepted.
    The sink is called *first*; only when it returns does the in-memory position
    move, so the engine can persist ``chunk.offset`` in the same transaction as
    the events it derived from the chunk.  If the sink raises, the very same
    chunk is offered again on the next poll.

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
      and drained from the stored position before the new file is read from 0.

No text decoding happens here: lines are bytes, the engine decodes only the
lines a pattern matched.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from healer.core.batch import Chunk, Offset

log = structlog.get_logger("healer.sources.files")

HEAD_BYTES = 256
"""How much of a file's first line identifies it (copytruncate / inode-reuse check)."""

_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z")
"""Rotated archives are never tailed, even if a glob matches them: their bytes are not lines."""

ROTATE_LINGER = 30.0
"""Seconds a renamed/deleted file stays open while the file now at its path is still
empty: logrotate renames first and signals the writer after, so the writer keeps
appending to the old inode for a moment.  As soon as the new file has data the
writer has switched, and the old file is drained one last time and closed."""

_DRAINED_MEMORY = 256
"""How many recently drained inodes we remember, so a glob that also matches the
rotated name (``app.log*``) does not re-read a file we already drained."""


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A glob of log files and the service their lines belong to."""

    glob: str
    service: str


def head_hash(head: bytes | None) -> str:
    """Hash of a file's first line (capped at ``HEAD_BYTES``); '' when not known yet."""
    if not head:
        return ""
    return hashlib.blake2b(head, digest_size=16).hexdigest()


def _read_head(fd: int) -> bytes | None:
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


def _head_of(first: bytes) -> bytes | None:
    """``_read_head`` on bytes already read from offset 0."""
    nl = first.find(b"\n", 0, HEAD_BYTES)
    if nl >= 0:
        return first[: nl + 1]
    if len(first) >= HEAD_BYTES:
        return first[:HEAD_BYTES]
    return None


def _unchanged(r: _Reader) -> bool:
    """Whether the start of the file is still what we read there (append-only so far)."""
    if r.head is not None:
        return os.pread(r.fd, len(r.head), 0) == r.head
    if r.pos == 0 and r.buf:
        return os.pread(r.fd, len(r.buf), 0) == r.buf
    return True


def _split_lines(
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


@dataclass(eq=False, slots=True)
class _Reader:
    """One open file descriptor being consumed.

    ``pos`` is the committed position (after the last line the sink accepted);
    ``scan`` is how far we have read; ``buf`` the unconsumed bytes in between
    (or, while ``skipping``, the kept prefix of an over-long line).
    """

    fd: int
    ino: int
    dev: int
    pos: int = 0
    scan: int = 0
    buf: bytes = b""
    skipping: bool = False
    head: bytes | None = None
    rotated: bool = False
    announce: bool = False
    linger_until: float = 0.0  # monotonic deadline while retired; 0 = drain to EOF and close now
    suspect: bool = False  # a read raced a truncation; re-check before reading again

    def reset(self) -> None:
        self.pos = self.scan = 0
        self.buf = b""
        self.skipping = False
        self.head = None


@dataclass(eq=False, slots=True)
class _Follower:
    """A followed path: the file currently at the path plus rotated files still to drain."""

    path: str
    service: str
    cur: _Reader | None = None
    retired: list[_Reader] = field(default_factory=list)
    pending: tuple[Chunk, Callable[[], None]] | None = None
    literal: bool = True


@dataclass(frozen=True, slots=True)
class _Glob:
    spec: FileSpec
    pattern: str  # absolute
    literal: bool
    static_dir: str  # longest directory prefix without glob magic


def _static_dir(pattern: str) -> str:
    parts = os.path.dirname(pattern).split(os.sep)
    keep: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        keep.append(part)
    return os.sep.join(keep) or os.sep


def _nearest_existing_dir(path: str) -> str:
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


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
        on_wakeup: Callable[[], None] | None = None,
        rescan_interval: float = 5.0,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be >= 1")
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be >= 1")
        self._globs = [self._make_glob(s) for s in specs]
        self._stored: dict[str, Offset] = {os.path.abspath(k): v for k, v in offsets.items()}
        self._sink = sink
        self._max_line = max_line_bytes
        self._chunk_bytes = chunk_bytes
        self._max_catchup_age = max_catchup_age
        self._clock = clock
        self._on_wakeup = on_wakeup
        self._rescan_interval = rescan_interval

        self._lock = threading.RLock()  # serialises poll(): one sink caller at a time
        self._followers: dict[str, _Follower] = {}
        self._known_paths: set[str] = set()
        self._drained: dict[tuple[int, int], tuple[int, str]] = {}
        self._problems: dict[str, str] = {}
        self._initial_done = False
        self._next_rescan = 0.0
        self._lines_cut = 0
        self._skipped_catchup = 0

        # Cross-thread signalling (observer/timer thread -> poll thread).
        self._flag_lock = threading.Lock()
        self._rescan_wanted = True
        self._wake_pending = False
        self._wake_event = threading.Event()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._handler: Any = None
        self._watches: dict[str, tuple[Any, tuple[int, int]]] = {}
        self._followed_snapshot: frozenset[str] = frozenset()
        self._lingering = False

    # ------------------------------------------------------------------ public

    @property
    def lines_cut(self) -> int:
        """Lines cut at ``max_line_bytes`` since construction (sink-accepted only)."""
        return self._lines_cut

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
        self._stop_event.clear()
        self._handler = _Handler(self)
        observer = Observer()
        observer.daemon = True
        self._observer = observer
        observer.start()
        with self._lock:
            self._update_watches()
        name = "healer-tailer" if self._on_wakeup is None else "healer-tailer-timer"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._wake(rescan=True)

    def stop(self) -> None:
        """Stop watching, stop the worker and close every file (idempotent)."""
        self._stop_event.set()
        self._wake_event.set()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
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
            with self._flag_lock:
                self._wake_pending = False
                rescan = self._rescan_wanted
                self._rescan_wanted = False
            now = time.monotonic()
            if now >= self._next_rescan or self._observer is None:
                # Without an observer (tests, replay) nothing else would ever flag a rescan.
                rescan = True
            failed: set[str] = set()
            # Existing files first: a rename rotation must drain the old inode
            # before a glob that also matches the rotated name sees it.
            for f in list(self._followers.values()):
                if not self._service(f):
                    failed.add(f.path)
            with self._flag_lock:
                rescan = rescan or self._rescan_wanted  # e.g. a followed file just vanished
                self._rescan_wanted = False
            if rescan or not self._initial_done:
                self._next_rescan = now + self._rescan_interval
                if self._observer is not None:
                    # Watch first, glob second: a file created in between is then seen by one of them.
                    self._update_watches()
                self._rescan()
                for f in list(self._followers.values()):
                    if f.path not in failed:
                        self._service(f)
            self._followed_snapshot = frozenset(self._followers)
            self._lingering = any(f.retired for f in self._followers.values())

    # ------------------------------------------------------------ wakeups

    def _wake(self, *, rescan: bool = False) -> None:
        """Called from any thread: ask the poll thread to run soon (coalesced)."""
        with self._flag_lock:
            if rescan:
                self._rescan_wanted = True
            if self._wake_pending:
                return
            self._wake_pending = True
        if self._on_wakeup is not None:
            try:
                self._on_wakeup()
            except Exception:
                with self._flag_lock:
                    self._wake_pending = False
                log.exception("tail_wakeup_failed")
        else:
            self._wake_event.set()

    def _run(self) -> None:
        """Own worker (no ``on_wakeup``) or safety-rescan timer (with ``on_wakeup``)."""
        while not self._stop_event.is_set():
            woke = self._wake_event.wait(timeout=self._rescan_interval)
            self._wake_event.clear()
            if self._stop_event.is_set():
                return
            if self._on_wakeup is not None:
                # Timer mode: the daemon's worker polls; retries and rescans need a nudge.
                with self._flag_lock:
                    self._wake_pending = False
                self._wake(rescan=True)
                continue
            if not woke:
                with self._flag_lock:
                    self._rescan_wanted = True
            try:
                self.poll()
            except Exception:
                log.exception("tail_poll_failed")

    def _event(self, paths: Sequence[str], structural: bool, is_directory: bool) -> None:
        """Observer thread: decide cheaply whether an event concerns us, then wake."""
        followed = self._followed_snapshot
        if self._lingering and not structural:
            # Possibly a write to a renamed file we still drain; cheap to check.
            self._wake()
            return
        for p in paths:
            if not p:
                continue
            if p in followed:
                self._wake(rescan=structural)
                return
            for g in self._globs:
                if is_directory and (g.static_dir == p or g.static_dir.startswith(p.rstrip(os.sep) + os.sep)):
                    self._wake(rescan=True)
                    return
                if _glob_match(p, g.pattern) or (is_directory and _glob_match(p, os.path.dirname(g.pattern))):
                    self._wake(rescan=True)
                    return

    # ------------------------------------------------------------ scanning

    @staticmethod
    def _make_glob(spec: FileSpec) -> _Glob:
        pattern = os.path.abspath(os.path.expanduser(spec.glob))
        return _Glob(spec, pattern, not glob.has_magic(pattern), _static_dir(pattern))

    def _rescan(self) -> None:
        """Expand every glob, start following new files, and recompute problems."""
        initial = not self._initial_done
        fresh: dict[str, str] = {}
        seen: set[str] = set()
        for g in self._globs:
            found = False
            for m in sorted(glob.glob(g.pattern)):
                if m.endswith(_COMPRESSED):
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
                    f = _Follower(m, g.spec.service, literal=g.literal)
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

    def _recover_missing(self, g: _Glob, seen: set[str]) -> None:
        """Start-up: a stored path that no longer exists may have been rotated away while
        we were down; drain its old inode now rather than when the path comes back."""
        for path, off in list(self._stored.items()):
            if path in seen or path in self._followers or os.path.lexists(path):
                continue
            if not _glob_match(path, g.pattern):
                continue
            del self._stored[path]
            f = _Follower(path, g.spec.service, literal=g.literal)
            self._known_paths.add(path)
            old = self._find_by_inode(path, off)
            if old is not None:
                f.retired.append(old)
                self._followers[path] = f

    def _open_cur(self, f: _Follower, initial: bool, problems: dict[str, str]) -> None:
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
        r = _Reader(fd, st.st_ino, st.st_dev)
        stored = self._stored.pop(f.path, None)
        if stored is not None:
            self._resume(f, r, st, stored)
        elif f.path in self._known_paths:
            r.rotated = r.announce = True  # delete-and-recreate seen across a missing phase
        elif (drained := self._drained.get((st.st_dev, st.st_ino))) is not None and (
            head_hash(_read_head(fd)) == drained[1] and st.st_size >= drained[0]
        ):
            # A glob also matching rotated names: this inode was already drained as
            # another path (the head check rules out a reused inode).
            r.pos = r.scan = drained[0]
            r.head = _read_head(fd) if r.pos else None
        elif initial and self._max_catchup_age > 0 and st.st_mtime < self._clock() - self._max_catchup_age:
            r.pos = r.scan = _last_line_end(fd, st.st_size)
            r.head = _read_head(fd) if r.pos else None
            r.announce = r.pos > 0
            self._skipped_catchup += r.pos
            log.info("tail_catchup_skipped", path=f.path, skipped_bytes=r.pos, mtime=st.st_mtime)
        self._known_paths.add(f.path)
        f.cur = r

    def _resume(self, f: _Follower, r: _Reader, st: os.stat_result, stored: Offset) -> None:
        """Apply a stored offset to the file now at the path (start-up)."""
        if (st.st_ino, st.st_dev) == (stored.inode, stored.dev):
            head = _read_head(r.fd)
            if stored.position == 0 or (
                st.st_size >= stored.position and (not stored.head_hash or head_hash(head) == stored.head_hash)
            ):
                r.pos = r.scan = stored.position
                r.head = head if stored.position else None
                return
            log.info("tail_truncated_while_stopped", path=f.path, position=stored.position, size=st.st_size)
            copy = self._find_copy(f.path, stored.head_hash, stored.position, exclude=(st.st_dev, st.st_ino))
        else:
            log.info("tail_rotated_while_stopped", path=f.path, old_inode=stored.inode)
            copy = self._find_by_inode(f.path, stored)
        if copy is not None:
            f.retired.append(copy)
        r.rotated = r.announce = True

    # ------------------------------------------------------------ rotation helpers

    def _find_by_inode(self, path: str, off: Offset) -> _Reader | None:
        """Find the rotated file that still has the stored inode (``app.log.1``, ``app.log-2024...``)."""
        directory = os.path.dirname(path)
        base = os.path.basename(path)
        names = [f"{base}.1", f"{base}.0"]
        try:
            with os.scandir(directory) as it:
                names += sorted(e.name for e in it if e.name not in names)
        except OSError:
            return None
        for name in names:
            cand = os.path.join(directory, name)
            try:
                st = os.stat(cand)
            except OSError:
                continue
            if (st.st_ino, st.st_dev) != (off.inode, off.dev) or not stat.S_ISREG(st.st_mode):
                continue
            r = self._open_copy(cand, off.head_hash, off.position)
            if r is not None:
                log.info("tail_rotated_file_found", path=path, rotated=cand, position=off.position)
                return r
        log.warning("tail_rotated_file_missing", path=path, inode=off.inode, position=off.position)
        return None

    def _find_copy(self, path: str, hh: str, position: int, exclude: tuple[int, int]) -> _Reader | None:
        """Find a copytruncate copy: a sibling whose first line matches and that reaches ``position``.

        Only names starting with the file's stem are considered, newest first,
        compressed ones never.  Without a head hash (nothing handed out yet, or a
        first line still incomplete) we cannot tell a copy from an unrelated file,
        so we do not guess.
        """
        if not hh or position <= 0:
            return None
        directory = os.path.dirname(path)
        base = os.path.basename(path)
        stem = base.split(".", 1)[0] or base
        cands: list[tuple[float, str]] = []
        try:
            with os.scandir(directory) as it:
                for e in it:
                    if e.name == base or not e.name.startswith(stem) or e.name.endswith(_COMPRESSED):
                        continue
                    try:
                        st = e.stat()
                    except OSError:
                        continue
                    if (st.st_dev, st.st_ino) == exclude or not stat.S_ISREG(st.st_mode):
                        continue
                    if st.st_size >= position:
                        cands.append((st.st_mtime, e.path))
        except OSError:
            return None
        for _, cand in sorted(cands, reverse=True):
            r = self._open_copy(cand, hh, position)
            if r is not None:
                log.info("tail_truncated_copy_found", path=path, copy=cand, position=position)
                return r
        log.warning("tail_truncated_copy_missing", path=path, position=position)
        return None

    def _open_copy(self, cand: str, hh: str, position: int) -> _Reader | None:
        """Open a rotated file/copy to drain from ``position`` if it really is ours."""
        try:
            fd = os.open(cand, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            head = _read_head(fd)
        except OSError:
            os.close(fd)
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size < position or (hh and head_hash(head) != hh):
            os.close(fd)
            return None
        return _Reader(fd, st.st_ino, st.st_dev, pos=position, scan=position, head=head if position else None)

    # ------------------------------------------------------------ per-file work

    def _service(self, f: _Follower) -> bool:
        """Bring one followed path up to date; False (and stop) at the first sink failure."""
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
        if r2.announce:
            # Persist a new position with no lines (rotation to an empty file, catch-up skip).
            empty = self._chunk(f, r2, b"", r2.pos, r2.pos, 0)

            def commit() -> None:
                r2.announce = r2.rotated = False

            return self._deliver(f, empty, commit)
        return True

    def _check_identity(self, f: _Follower) -> None:
        """Detect rename/delete rotation and truncation of the file at ``f.path``."""
        r = f.cur
        if r is None:
            if f.path in self._known_paths or f.retired:
                self._open_cur(f, False, {})
            return
        try:
            st = os.stat(f.path)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                log.info("tail_file_gone", path=f.path)
                self._retire(f)
            with self._flag_lock:
                self._rescan_wanted = True
            return
        if not stat.S_ISREG(st.st_mode):
            self._retire(f, linger=False)  # nobody reopens a directory as a log
            with self._flag_lock:
                self._rescan_wanted = True
            return
        if (st.st_ino, st.st_dev) != (r.ino, r.dev):
            log.info("tail_rotated", path=f.path, old_inode=r.ino, new_inode=st.st_ino)
            self._retire(f)
            self._open_cur(f, False, {})
            if f.cur is None:
                with self._flag_lock:
                    self._rescan_wanted = True
            return
        size = os.fstat(r.fd).st_size
        # A truncate-and-rewrite can regrow past our position before we look, with
        # the same size and (coarse clock) the same mtime, so compare the head every
        # time: one pread of at most HEAD_BYTES.
        truncated = size < r.scan or not _unchanged(r)
        if truncated:
            log.info("tail_truncated", path=f.path, position=r.pos, size=size)
            copy = self._find_copy(f.path, head_hash(r.head), r.pos, exclude=(r.dev, r.ino))
            if copy is not None:
                f.retired.append(copy)
            r.reset()
            r.rotated = r.announce = True

    def _retire(self, f: _Follower, *, linger: bool = True) -> None:
        """The path no longer names our file: keep its fd to drain it before anything else."""
        if f.cur is not None:
            if linger:
                f.cur.linger_until = time.monotonic() + ROTATE_LINGER
            f.retired.append(f.cur)
            f.cur = None

    def _lingers(self, f: _Follower, r: _Reader) -> bool:
        """Whether a retired file may still receive lines (see ``ROTATE_LINGER``)."""
        if not r.linger_until or self._stop_event.is_set() or time.monotonic() >= r.linger_until:
            return False
        return f.cur is None or os.fstat(f.cur.fd).st_size == 0

    def _remember_drained(self, r: _Reader) -> None:
        self._drained[(r.dev, r.ino)] = (r.pos, head_hash(r.head))
        while len(self._drained) > _DRAINED_MEMORY:
            del self._drained[next(iter(self._drained))]

    def _read(self, f: _Follower, r: _Reader, *, final: bool) -> bool:
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
            if data and not final and r.scan > 0 and not _unchanged(r):
                # Truncated and rewritten between our identity check and this read:
                # these bytes belong to the new content at a stale offset.  Drop them;
                # the caller re-checks and restarts from 0.
                r.suspect = True
                return True
            if not data:
                if final and r.buf:
                    out = r.buf + b"\n"
                    cut = 1 if r.skipping else 0
                    chunk = self._chunk(f, r, out, r.pos, r.scan, cut)
                    end = r.scan

                    def commit_tail(r: _Reader = r, end: int = end) -> None:
                        r.pos = end
                        r.buf = b""
                        r.skipping = r.rotated = r.announce = False

                    return self._deliver(f, chunk, commit_tail)
                return True
            out, new_pos, cut, new_buf, new_skip = _split_lines(r.buf, r.skipping, data, r.scan, r.pos, self._max_line)
            new_scan = r.scan + len(data)
            if new_pos == r.pos:
                r.buf, r.skipping, r.scan = new_buf, new_skip, new_scan
                continue
            if r.head is None:
                # From the bytes we split, not a second read that could see newer content.
                r.head = _head_of(r.buf if r.skipping else r.buf + data) if r.pos == 0 else None
                if r.head is None:
                    r.head = _read_head(r.fd)
            chunk = self._chunk(f, r, out, r.pos, new_pos, cut)

            def commit(
                r: _Reader = r, p: int = new_pos, b: bytes = new_buf, s: bool = new_skip, sc: int = new_scan
            ) -> None:
                r.pos, r.buf, r.skipping, r.scan = p, b, s, sc
                r.rotated = r.announce = False

            if not self._deliver(f, chunk, commit):
                return False

    def _chunk(self, f: _Follower, r: _Reader, data: bytes, start: int, end: int, cut: int) -> Chunk:
        off = Offset(f.path, r.ino, r.dev, end, head_hash(r.head) if end else "")
        return Chunk(f.path, f.service, data, start, off, cut, r.rotated)

    def _deliver(self, f: _Follower, chunk: Chunk, commit: Callable[[], None]) -> bool:
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
        self._lines_cut += chunk.cut_lines
        return True

    # ------------------------------------------------------------ problems & watches

    def _set_problems(self, fresh: dict[str, str]) -> None:
        """Replace the problem set, logging each change once (not on every rescan)."""
        for key, reason in fresh.items():
            if self._problems.get(key) != reason:
                log.warning("tail_problem", path=key, reason=reason)
        for key in self._problems.keys() - fresh.keys():
            log.info("tail_problem_cleared", path=key, reason=self._problems[key])
        self._problems = fresh

    def _update_watches(self) -> None:
        """Watch each glob's directory, or its nearest existing ancestor until it exists.

        Called under the poll lock after every glob rescan; a directory that was
        deleted and recreated gets a fresh watch (the old inotify watch died with it).
        """
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )

        observer = self._observer
        if observer is None:
            return
        wanted: set[str] = set()
        for g in self._globs:
            wanted.add(_nearest_existing_dir(g.static_dir))
            if not g.literal and glob.has_magic(os.path.dirname(g.pattern)):
                wanted.update(d for d in glob.glob(os.path.dirname(g.pattern)) if os.path.isdir(d))
            else:
                wanted.add(_nearest_existing_dir(os.path.dirname(g.pattern)))
        for d, (watch, ident) in list(self._watches.items()):
            try:
                st = os.stat(d)
                alive = (st.st_ino, st.st_dev) == ident
            except OSError:
                alive = False
            if d not in wanted or not alive:
                with contextlib.suppress(Exception):
                    observer.unschedule(watch)
                del self._watches[d]
        event_filter = [
            FileModifiedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileMovedEvent,
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
        ]
        for d in sorted(wanted - self._watches.keys()):
            try:
                st = os.stat(d)
                watch = observer.schedule(self._handler, d, recursive=False, event_filter=event_filter)
            except Exception as err:
                log.debug("tail_watch_failed", directory=d, error=str(err))
                continue
            self._watches[d] = (watch, (st.st_ino, st.st_dev))


def _glob_match(path: str, pattern: str) -> bool:
    """Whether ``path`` matches a glob pattern segment by segment (``*`` never crosses ``/``)."""
    import fnmatch

    pp = path.split(os.sep)
    gp = pattern.split(os.sep)
    return len(pp) == len(gp) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(pp, gp, strict=True))


def _last_line_end(fd: int, size: int) -> int:
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


class _Handler:
    """watchdog event handler: runs on the observer thread, only classifies and wakes."""

    def __init__(self, tailer: FileTailer) -> None:
        self._tailer = tailer

    def dispatch(self, event: Any) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        structural = event.event_type != "modified"
        self._tailer._event((src, dest), structural, bool(event.is_directory))
