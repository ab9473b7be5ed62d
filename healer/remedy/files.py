"""The one file checkpoint service: read safely, back up, replace atomically, undo without clobbering.

``set_config`` and ``restore_file`` both change a file an application owns,
often in a directory the application's user can write while healer runs with
more rights. So the file is opened exactly once, with ``O_NOFOLLOW``, from a
parent directory that was itself opened from ``/`` one component at a time
with ``O_NOFOLLOW``: no symlink anywhere on the path is followed. Its bytes,
mode, owner and inode all come from that one descriptor, and the backup is
written from those bytes; nothing is read a second time by name, so swapping
the file for a link between two reads cannot make healer copy a root-only file
into the application's directory.

A reader (the service whose config we fix) must only ever see the old file or
the new one, never an empty or half-written one, and a power cut must not
leave a truncated config behind. So the new bytes go to a temp file in the
same (pinned) directory, are fsynced and given their mode and owner, then
renamed over the target; the directory is fsynced so the rename is durable.
``rename`` replaces the name itself: it never writes through a link.

Backups hold the exact bytes, so undo can restore a file that no parser
round-trips (comments, ordering, odd quoting). They are written 0600 with
healer's ids: ``.env`` files carry secrets, and a backup must not widen who
can read them.

Undo (certbot's reverter model: the checkpoint is saved before the change)
checks the file is still what healer wrote: the same bytes (a later step of
the same chain may have rewritten and restored it), or the very inode healer
wrote. An in-place edit since is kept as a "pre-undo" backup and then undone;
a file *replaced* since by other content (a new inode, or a symlink) is not
touched and the undo is refused with the backup's path, because whoever
replaced it owns it now.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from healer.core.errors import ActionError, ActionRefused

BACKUP_MODE = 0o600
NEW_FILE_MODE = 0o600
MAX_BYTES = 16 * 1024 * 1024  # config files, not data: anything bigger is not ours to edit
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO must not hang us


@dataclass(frozen=True)
class FileMeta:
    """What must survive a rewrite: permissions and ownership."""

    mode: int
    uid: int
    gid: int

    @classmethod
    def ours(cls, mode: int = NEW_FILE_MODE) -> FileMeta:
        """healer's own ids: for a file healer creates, never a template's owner."""
        return cls(mode, os.geteuid(), os.getegid())


@dataclass(frozen=True)
class Snapshot:
    """A regular file as read through one ``O_NOFOLLOW`` descriptor."""

    path: Path
    data: bytes
    meta: FileMeta
    dev: int
    ino: int


class MetaRecord(TypedDict):
    mode: int
    uid: int
    gid: int


class FileChange(TypedDict):
    """What undo needs, saved in the action's state before the file changes."""

    path: str
    backup: str | None  # None: the file did not exist and undo removes it
    meta: MetaRecord | None  # the original's mode and owner
    sha_after: str
    dev: int  # identity of the file healer wrote
    ino: int


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_dir(path: Path) -> int:
    """A descriptor for directory ``path``, reached from ``/`` without following any symlink."""
    if not path.is_absolute():
        raise ActionRefused(f"{path}: healer works on absolute paths only")
    fd = os.open("/", _DIR_FLAGS)
    try:
        for i, part in enumerate(path.parts[1:], 1):
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                here = Path(*path.parts[: i + 1])
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(here):
                    raise ActionRefused(f"{here} is a symlink; configure the real path (no links on the way)") from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _meta(st: os.stat_result) -> FileMeta:
    return FileMeta(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def read(path: Path) -> Snapshot | None:
    """The file's bytes and metadata from one descriptor, or None when it does not exist.

    Refuses (``ActionRefused``) a symlink at ``path`` or on the way to it, and
    anything but a regular file.
    """
    dfd = open_dir(path.parent)
    try:
        try:
            fd = os.open(path.name, _FILE_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ActionRefused(f"{path} is a symlink; configure the real file's path") from None
            raise
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ActionRefused(f"{path} is not a regular file; left alone")
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ActionRefused(f"{path} is over {MAX_BYTES} bytes; not a config file healer edits")
    return Snapshot(path, data, _meta(st), st.st_dev, st.st_ino)


def _fsync_dir(dfd: int) -> None:
    os.fsync(dfd)


@dataclass
class Staged:
    """New bytes in a temp file beside the target, not yet renamed over it."""

    path: Path
    dir_fd: int
    tmp: str
    dev: int
    ino: int

    def commit(self, expect: Snapshot | None) -> None:
        """Rename over the target if it is still ``expect`` (the same inode, or still absent)."""
        try:
            try:
                st: os.stat_result | None = os.stat(self.path.name, dir_fd=self.dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            now = None if st is None else (st.st_dev, st.st_ino)
            was = None if expect is None else (expect.dev, expect.ino)
            if now != was:
                raise ActionError(f"{self.path} changed while healer was writing it; not replaced")
            os.replace(self.tmp, self.path.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            _fsync_dir(self.dir_fd)
        except BaseException:
            self.discard()
            raise
        self._close()

    def commit_after(self, checkpoint: Callable[[], None], expect: Snapshot | None) -> None:
        """Save the undo state first (``checkpoint``), then commit; any failure leaves no temp file."""
        try:
            checkpoint()
        except BaseException:
            self.discard()
            raise
        self.commit(expect)

    def discard(self) -> None:
        if self.dir_fd < 0:
            return  # committed or discarded already
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp, dir_fd=self.dir_fd)
        self._close()

    def _close(self) -> None:
        # Once only: closing a number twice could close a descriptor another thread opened since.
        fd, self.dir_fd = self.dir_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def stage(path: Path, data: bytes, meta: FileMeta) -> Staged:
    """Write ``data`` with ``meta`` to a fsynced temp file in ``path``'s (pinned) directory."""
    dfd = open_dir(path.parent)
    tmp = f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.healer-tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
    except BaseException:
        os.close(dfd)
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            st = os.fstat(fh.fileno())
            if (st.st_uid, st.st_gid) != (meta.uid, meta.gid):
                os.fchown(fh.fileno(), meta.uid, meta.gid)
            os.fchmod(fh.fileno(), meta.mode)  # after chown, which clears set-id bits
            os.fsync(fh.fileno())
    except BaseException:
        Staged(path, dfd, tmp, 0, 0).discard()
        raise
    return Staged(path, dfd, tmp, st.st_dev, st.st_ino)


def write(path: Path, data: bytes, meta: FileMeta, expect: Snapshot | None) -> Staged:
    """Stage and commit in one go; returns the staged file's identity."""
    staged = stage(path, data, meta)
    staged.commit(expect)
    return staged


def backup(snap: Snapshot, backup_dir: Path, *, label: str = "", now: float) -> Path:
    """Write ``snap``'s exact bytes to a timestamped 0600 file in ``backup_dir`` and return its path.

    The name carries the original name, a UTC timestamp and a label (an
    incident id) so a human can find the right one without healer's database.
    """
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    base = f"{snap.path.name}.{stamp}{'.' + label if label else ''}"
    dest = backup_dir / f"{base}.bak"
    n = 1
    while dest.exists():
        dest = backup_dir / f"{base}.{n}.bak"
        n += 1
    write(dest, snap.data, FileMeta.ours(BACKUP_MODE), None)
    return dest


def record(path: Path, backup_path: Path | None, before: Snapshot | None, staged: Staged, data: bytes) -> FileChange:
    meta = None if before is None else MetaRecord(mode=before.meta.mode, uid=before.meta.uid, gid=before.meta.gid)
    return FileChange(
        path=str(path),
        backup=None if backup_path is None else str(backup_path),
        meta=meta,
        sha_after=sha256(data),
        dev=staged.dev,
        ino=staged.ino,
    )


@dataclass(frozen=True)
class Undone:
    """What undo did: ``kept`` is the backup of a foreign in-place edit, if there was one."""

    restored: bool
    kept: Path | None = None
    note: str = ""


def undo(change: FileChange, backup_dir: Path, *, label: str, now: float) -> Undone:
    """Put the file back as it was before ``change``, unless someone replaced it since."""
    path = Path(change["path"])
    current = read(path)
    if current is None and change["backup"] is None:
        return Undone(False, note="already gone")
    saved = None if change["backup"] is None else read(Path(change["backup"]))
    if change["backup"] is not None and saved is None:
        raise ActionError(f"cannot undo {path}: backup {change['backup']} is gone")
    if current is not None and saved is not None and current.data == saved.data:
        # Nothing to put back (a crash before the rename, or someone restored it already).
        return Undone(False, note="already as before")
    ours = current is not None and sha256(current.data) == change["sha_after"]
    if current is not None and not ours and (current.dev, current.ino) != (change["dev"], change["ino"]):
        raise ActionError(
            f"{path} was replaced since healer wrote it (a new inode); not undone"
            + (f"; the original bytes are in {change['backup']}" if change["backup"] else "")
        )
    kept = None
    if current is not None and sha256(current.data) != change["sha_after"]:
        # Edited in place after us: keep their version too, then restore.
        kept = backup(current, backup_dir, label=f"{label}-pre-undo", now=now)
    if change["backup"] is None:
        assert current is not None
        _unlink_if(path, current)
        return Undone(True, kept, "removed the file healer created")
    assert saved is not None
    m = change["meta"]
    meta = FileMeta.ours() if m is None else FileMeta(int(m["mode"]), int(m["uid"]), int(m["gid"]))
    write(path, saved.data, meta, current)
    return Undone(True, kept, f"restored from {change['backup']}")


def _unlink_if(path: Path, snap: Snapshot) -> None:
    dfd = open_dir(path.parent)
    try:
        st = os.stat(path.name, dir_fd=dfd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) != (snap.dev, snap.ino):
            raise ActionError(f"{path} changed during undo; not removed")
        os.unlink(path.name, dir_fd=dfd)
        _fsync_dir(dfd)
    finally:
        os.close(dfd)
