"""Which files running processes hold open, judged by inode, and what a process we cannot inspect may hold.

``disk_cleanup`` must never delete a file some process has open (deleting it
frees nothing until it is closed, and the writer goes on logging into a
ghost). Open files are read from ``/proc/<pid>/fd``: ``stat`` on each entry
follows the kernel's link to the open file itself, so the answer is a
``(device, inode)`` pair that holds whatever mount namespace or path the
process sees the file under.

Some processes cannot be inspected even by root (a sandbox's PID 1, a process
of another user when healer is not root, any root process when healer lacks
``CAP_SYS_PTRACE``). Such a process blocks the cleanup unless there is
evidence that it cannot reach the cleanup directories: it lives in another
mount namespace (no mount of ours appears in its ``mountinfo``, which is
readable without ptrace rights; or its ``ns/mnt`` link differs from ours) and
none of its mounts is the filesystem the directories are on, so no path of
its can lead there. Kernel threads and zombies hold no user files. Everything
else is named in the refusal: pid, executable if readable, else its name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
PF_KTHREAD = 0x00200000  # include/linux/sched.h


@dataclass(frozen=True)
class Hidden:
    """A process whose open files could not be read, and what we know about it instead."""

    pid: int
    name: str
    exe: str | None
    evidence: str  # why it cannot hold the files, or "" when nothing rules it out

    def describe(self) -> str:
        who = self.exe or f"{self.name}, exe unreadable"
        return f"pid {self.pid} ({who})"


@dataclass(frozen=True)
class OpenFiles:
    inodes: frozenset[tuple[int, int]]
    blocking: tuple[Hidden, ...]  # uninspectable, and nothing shows it cannot see the directories
    cleared: tuple[Hidden, ...]  # uninspectable, but cannot reach the directories


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _readlink(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _mounts(pid: int | str) -> tuple[set[str], set[str]] | None:
    """(mount ids, "major:minor" devices) from ``/proc/<pid>/mountinfo``, or None when unreadable."""
    text = _read(PROC / str(pid) / "mountinfo")
    if text is None:
        return None
    ids, devs = set(), set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2:
            ids.add(fields[0])
            devs.add(fields[2])
    return ids, devs


def _dev(st_dev: int) -> str:
    return f"{os.major(st_dev)}:{os.minor(st_dev)}"


def _kernel_or_zombie(pid: str) -> bool:
    text = _read(PROC / pid / "stat")
    if text is None:
        return False
    # The name (field 2) may hold spaces and parentheses; the fields after the last ")" do not.
    rest = text.rsplit(")", 1)[-1].split()
    if len(rest) < 7:
        return False
    return rest[0] in ("Z", "X") or bool(int(rest[6]) & PF_KTHREAD)


def _evidence(pid: str, devices: set[int], ours: tuple[set[str], set[str]] | None) -> str:
    """Why process ``pid`` cannot reach files on ``devices``; "" when that cannot be shown."""
    if ours is None:
        return ""
    wanted = {_dev(d) for d in devices}
    if not wanted <= ours[1]:
        return ""  # our own mountinfo does not show these devices (btrfs subvolumes, overlays): no proof
    own_ns, their_ns = _readlink(PROC / "self" / "ns" / "mnt"), _readlink(PROC / pid / "ns" / "mnt")
    theirs = _mounts(pid)
    if theirs is None:
        return ""
    if their_ns is not None and own_ns is not None:
        if their_ns == own_ns:
            return ""
    elif theirs[0] & ours[0]:
        return ""  # a mount belongs to one namespace: sharing one means sharing ours
    if wanted & theirs[1]:
        return ""  # the filesystem is mounted in its namespace too: it may see the files
    return "another mount namespace, where the cleanup filesystem is not mounted"


def scan(devices: Iterable[int]) -> OpenFiles:
    """Every regular file any process holds open, and the processes we could not look into."""
    devs = set(devices)
    ours = _mounts("self")
    inodes: set[tuple[int, int]] = set()
    blocking: list[Hidden] = []
    cleared: list[Hidden] = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        pid = entry.name
        fd_dir = PROC / pid / "fd"
        try:
            fds = os.listdir(fd_dir)
            for fd in fds:
                try:
                    st = os.stat(fd_dir / fd)
                except (FileNotFoundError, ProcessLookupError):
                    continue  # closed meanwhile
                if stat.S_ISREG(st.st_mode):
                    inodes.add((st.st_dev, st.st_ino))
            continue
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone: it holds nothing open
        except PermissionError:
            pass
        if _kernel_or_zombie(pid):
            continue
        name = (_read(PROC / pid / "comm") or "?").strip()
        hidden = Hidden(int(pid), name, _readlink(PROC / pid / "exe"), _evidence(pid, devs, ours))
        (cleared if hidden.evidence else blocking).append(hidden)
    return OpenFiles(frozenset(inodes), tuple(blocking), tuple(cleared))
