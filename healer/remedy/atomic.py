"""Crash-safe file replacement and byte-exact backups.

A reader (the service whose config we fix) must only ever see the old file or
the new one, never an empty or half-written one, and a power cut must not
leave a truncated config behind. So: write a temp file in the *same*
directory (``rename`` is atomic only within one filesystem), fsync it, give it
the old file's mode and owner, ``os.replace`` it over the target, then fsync
the directory so the rename itself is durable.

Backups hold the exact bytes, so undo can restore a file that no parser
round-trips (comments, ordering, odd quoting). They are written 0600: ``.env``
files carry secrets, and a backup must not widen who can read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BACKUP_MODE = 0o600


@dataclass(frozen=True)
class FileMeta:
    """What must survive a rewrite: permissions and ownership."""

    mode: int
    uid: int
    gid: int


def file_meta(path: str | os.PathLike[str]) -> FileMeta | None:
    """The mode/owner of ``path`` (not following a symlink), or None when it is missing."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return FileMeta(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    meta: FileMeta | None = None,
    default_mode: int = 0o644,
) -> None:
    """Replace ``path`` with ``data`` so readers see either the old or the new bytes.

    Mode and owner come from ``meta`` if given, else from the existing file,
    else ``default_mode`` and the caller's ids. A symlink at ``path`` is
    refused rather than replaced: replacing it would silently turn the link
    into a regular file and detach whatever else reads through it.
    """
    target = Path(path)
    if target.is_symlink():
        raise OSError(f"{target} is a symlink; point the configuration at the real file")
    keep = meta or file_meta(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".healer-tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if keep is not None:
                os.fchmod(fh.fileno(), keep.mode)
                st = os.fstat(fh.fileno())
                if (st.st_uid, st.st_gid) != (keep.uid, keep.gid):
                    os.fchown(fh.fileno(), keep.uid, keep.gid)
            else:
                os.fchmod(fh.fileno(), default_mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def backup_file(
    path: str | os.PathLike[str],
    backup_dir: str | os.PathLike[str],
    *,
    label: str = "",
    now: float | None = None,
) -> Path:
    """Copy ``path``'s exact bytes to a timestamped file in ``backup_dir`` and return its path.

    The name carries the original name, a UTC timestamp and a label (an
    incident id) so a human can find the right one without healer's database.
    """
    src = Path(path)
    data = src.read_bytes()
    directory = Path(backup_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    base = f"{src.name}.{stamp}{'.' + label if label else ''}"
    dest = directory / f"{base}.bak"
    n = 1
    while dest.exists():
        dest = directory / f"{base}.{n}.bak"
        n += 1
    atomic_write(dest, data, meta=FileMeta(BACKUP_MODE, os.getuid(), os.getgid()))
    return dest


def restore_backup(backup: str | os.PathLike[str], path: str | os.PathLike[str], meta: FileMeta | None) -> None:
    """Put a backup's bytes back, atomically, with the mode/owner the file had before."""
    atomic_write(path, Path(backup).read_bytes(), meta=meta)
