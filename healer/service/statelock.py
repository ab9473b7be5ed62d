"""One daemon per state directory: an ``flock`` on ``healer.lock`` in it.

Two daemons on one state would each tail every file and count every line
twice, and both would run the fixes. ``flock`` (not a pid file alone) because
the kernel drops the lock when the holder dies, even by SIGKILL, so a stale
file never blocks a restart; the pid written into the file is only there to
name the holder in the refusal.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from healer.core.errors import HealerError

LOCK_NAME = "healer.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600


class StateLocked(HealerError):
    """Another daemon holds the state directory."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process (its pid is unknown)"
        super().__init__(
            f"another healer daemon ({who}) is running on state directory {state_dir}; "
            "stop it first (systemctl stop healer), or give this one its own state_dir"
        )
        self.pid = pid


def holder(state_dir: Path) -> int | None:
    """The pid written by the daemon holding the lock, if one does (read-only; for the CLI's messages)."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(raw) if raw.isdigit() else None
    except OSError:
        return None


class StateLock:
    """Held for the daemon's life; released by :meth:`release` or by the kernel when the process ends."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        d = self.state_dir
        try:
            if not d.is_dir():
                d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                os.chmod(d, DIR_MODE)
            fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise HealerError(f"{d / LOCK_NAME}: cannot create the state lock: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StateLocked(d, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
