"""Finding where a rotated file went: by inode (rename rotation) or by head (copytruncate).

Every candidate is opened and checked (regular file, large enough, same first
line) before it is trusted, so an unrelated file or a reused inode is never
drained as ours.  The functions only open and return a :class:`Reader`; the
tailer decides when to drain and close it.
"""

from __future__ import annotations

import os
import stat

import structlog

from healer.core.batch import Offset
from healer.sources.tail.lines import head_hash, read_head
from healer.sources.tail.reader import Follower, Reader

log = structlog.get_logger("healer.sources.tail")

COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z")
"""Rotated archives are never tailed, even if a glob matches them: their bytes are not lines."""

ROTATE_LINGER = 30.0
"""Seconds a renamed/deleted file stays open while the file now at its path is still
empty: logrotate renames first and signals the writer after, so the writer keeps
appending to the old inode for a moment.  As soon as the new file has data the
writer has switched, and the old file is drained one last time and closed."""


def resume(f: Follower, r: Reader, st: os.stat_result, stored: Offset) -> None:
    """Apply a stored offset to the file now at the path (start-up)."""
    if (st.st_ino, st.st_dev) == (stored.inode, stored.dev):
        head = read_head(r.fd)
        if stored.position == 0 or (
            st.st_size >= stored.position and (not stored.head_hash or head_hash(head) == stored.head_hash)
        ):
            r.pos = r.scan = stored.position
            r.head = head if stored.position else None
            return
        log.info("tail_truncated_while_stopped", path=f.path, position=stored.position, size=st.st_size)
        copy = find_copy(f.path, stored.head_hash, stored.position, exclude=(st.st_dev, st.st_ino))
    else:
        log.info("tail_rotated_while_stopped", path=f.path, old_inode=stored.inode)
        copy = find_by_inode(f.path, stored)
    if copy is not None:
        f.retired.append(copy)
    r.rotated = r.announce = True


def find_by_inode(path: str, off: Offset) -> Reader | None:
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
        r = open_copy(cand, off.head_hash, off.position)
        if r is not None:
            log.info("tail_rotated_file_found", path=path, rotated=cand, position=off.position)
            return r
    log.warning("tail_rotated_file_missing", path=path, inode=off.inode, position=off.position)
    return None


def find_copy(path: str, hh: str, position: int, exclude: tuple[int, int]) -> Reader | None:
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
                if e.name == base or not e.name.startswith(stem) or e.name.endswith(COMPRESSED):
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
        r = open_copy(cand, hh, position)
        if r is not None:
            log.info("tail_truncated_copy_found", path=path, copy=cand, position=position)
            return r
    log.warning("tail_truncated_copy_missing", path=path, position=position)
    return None


def open_copy(cand: str, hh: str, position: int) -> Reader | None:
    """Open a rotated file/copy to drain from ``position`` if it really is ours."""
    try:
        fd = os.open(cand, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        head = read_head(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size < position or (hh and head_hash(head) != hh):
        os.close(fd)
        return None
    return Reader(fd, st.st_ino, st.st_dev, pos=position, scan=position, head=head if position else None)
