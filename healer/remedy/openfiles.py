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
else is named: pid, executable if readable, else its name.

For those, the kernel can still answer per file: a write lease
(``F_SETLEASE``) is granted only when no other open file description of the
inode exists, in any process or namespace, mappings included (the kernel's
own open counts, not ``/proc``). :func:`sole_opener` takes one; while it is
held, anyone opening the file waits, and the lease shows that someone is
waiting. Leases need ``fs.leases-enable``, a filesystem that supports them
(tmpfs and local disks do) and ``CAP_LEASE`` or owning the file. A lease
break is signalled to us; the signal is one whose default is to be ignored
(``F_SETSIG``), never the default SIGIO, which would kill the daemon.
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
PF_KTHREAD = 0x00200000  # include/linux/sched.h
CAP_SYS_PTRACE = 19  # include/uapi/linux/capability.h
CAP_LEASE = 28
F_SETSIG = getattr(fcntl, "F_SETSIG", 10)  # Linux's value; older Pythons lack the name
# Signals whose default action is to be ignored: a lease break signalled with one cannot kill us.
QUIET_SIGNALS = (signal.SIGURG, signal.SIGWINCH)


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


class LeaseUnavailable(Exception):
    """The kernel cannot tell us whether a file is open elsewhere: no lease on this file or host."""


def has_capability(cap: int) -> bool:
    """Whether this process holds ``cap`` in its effective set (``/proc/self/status``)."""
    for line in (_read(PROC / "self" / "status") or "").splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def lease_problem() -> str:
    """Why leases cannot be used by this process at all; "" when they can."""
    if (_read(Path("/proc/sys/fs/leases-enable")) or "1").strip() == "0":
        return "file leases are off (sysctl fs.leases-enable = 0)"
    if quiet_signal() is None:
        return "no signal is free to receive lease breaks (SIGURG and SIGWINCH have handlers)"
    return ""


def quiet_signal() -> int | None:
    for sig in QUIET_SIGNALS:
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.SIG_IGN):
            return int(sig)
    return None


def sole_opener(fd: int) -> bool:
    """Take a write lease on ``fd``: True when no other process anywhere has the file open.

    False when someone has it open (or is opening it). Raises :class:`LeaseUnavailable` when the
    kernel cannot tell (no lease support here, no CAP_LEASE for a file we do not own).
    While it returns True the lease is held: call :func:`still_sole` before acting, then :func:`release`.
    """
    sig = quiet_signal()
    if sig is None:
        raise LeaseUnavailable(lease_problem())
    fcntl.fcntl(fd, F_SETSIG, sig)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    except BlockingIOError:  # EAGAIN: another open file description of this inode exists
        return False
    except OSError as exc:
        raise LeaseUnavailable(f"no file lease: {exc.strerror}") from None
    return True


def still_sole(fd: int) -> bool:
    """Under a lease from :func:`sole_opener`: False once anyone has started to open the file."""
    return fcntl.fcntl(fd, fcntl.F_GETLEASE) == fcntl.F_WRLCK


def release(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
