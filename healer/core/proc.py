"""The one place healer starts processes.

Every subprocess goes through ``Runner.run``: an argv list (never a shell), a
timeout that kills the child's whole process group, an environment built
from an allowlist, and output kept to a bounded head and tail while it is
read (a child that prints gigabytes costs us ``OUTPUT_LIMIT`` bytes, not
gigabytes). Text from logs and webhooks is hostile, so the argv is checked for
NUL bytes here as a last line of defence; the actions validate values before
they get this far.

The environment is the point of the allowlist: healer's own environment holds
the bot token and the webhook secrets, and variables such as ``GIT_TRACE``,
``PIP_INDEX_URL`` or ``LD_PRELOAD`` change what a tool does. A child gets
``PATH``, ``HOME``, ``LANG`` and ``LC_*`` from healer's environment, the
values the caller sets explicitly, and the names the caller's settings list in
``inherit``: nothing else.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from healer.core.errors import ActionRefused

log = structlog.get_logger("healer.core.proc")

# Enough for the runtime to work, nothing that changes what a tool does. A name
# ending in "*" is a prefix (the LC_* locale family).
DEFAULT_ENV_ALLOW: tuple[str, ...] = ("PATH", "HOME", "LANG", "LC_*")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OUTPUT_LIMIT = 16_384
_READ = 65_536


@dataclass(frozen=True, slots=True)
class ProcResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def summary(self, limit: int = 400) -> str:
        text = (self.stderr or self.stdout).strip()
        return text[-limit:]


class _Bounded:
    """Keeps the first and last ``limit // 2`` bytes of a stream and counts what it dropped."""

    def __init__(self, limit: int) -> None:
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        extra = len(self.tail) - self.half
        if extra > 0:
            del self.tail[:extra]
            self.dropped += extra

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if self.dropped:
            return f"{head}\n... [{self.dropped} bytes cut] ...\n{tail}"
        return head + tail


def _allowed(name: str, allow: Sequence[str]) -> bool:
    return any(name.startswith(a[:-1]) if a.endswith("*") else name == a for a in allow)


def build_env(allow: Sequence[str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """healer's variables named by ``allow`` (``"LC_*"`` is a prefix), then ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if _allowed(k, allow)}
    env.setdefault("PATH", DEFAULT_PATH)
    if extra:
        env.update(extra)
    return env


def check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str | bytes) or not argv:
        raise ActionRefused("argv must be a non-empty list of strings, never a shell string")
    out = []
    for part in argv:
        if not isinstance(part, str):
            raise ActionRefused(f"argv element {part!r} is not a string")
        if "\x00" in part:
            raise ActionRefused("argv element contains a NUL byte")
        out.append(part)
    return tuple(out)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The child leads its own session, so this reaches what it started too
    # (git's remote helpers, pip's build backends) and no pipe is left open.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _collect(proc: subprocess.Popen[bytes], deadline: float) -> tuple[_Bounded, _Bounded, bool]:
    """Read both pipes until EOF or the deadline; True in the last slot when it timed out."""
    out, err = _Bounded(OUTPUT_LIMIT), _Bounded(OUTPUT_LIMIT)
    assert proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return out, err, True
            for key, _ in sel.select(timeout=left):
                chunk = os.read(key.fd, _READ)
                if chunk:
                    key.data.add(chunk)
                else:
                    sel.unregister(key.fileobj)
    return out, err, False


@dataclass
class Runner:
    """Runs argv lists; keeps a bounded history so audits and tests can see what ran."""

    env_allow: tuple[str, ...] = DEFAULT_ENV_ALLOW
    default_timeout: float = 120.0
    history: list[ProcResult] = field(default_factory=list)
    history_limit: int = 200
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        inherit: Sequence[str] = (),
    ) -> ProcResult:
        """Run ``argv`` to completion or ``timeout``.

        ``env`` sets values explicitly (they win over inherited ones);
        ``inherit`` names further variables to pass from healer's own
        environment, for settings that list them on purpose.
        """
        args = check_argv(argv)
        limit = self.default_timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            # An argv list, checked above; never a shell.
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=build_env((*self.env_allow, *inherit), env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                shell=False,
            )
        except OSError as exc:
            result = ProcResult(args, 127, "", f"{type(exc).__name__}: {exc}", time.monotonic() - start)
        else:
            with proc:
                timed_out = True
                try:
                    out, err, timed_out = _collect(proc, start + limit)
                    if not timed_out:
                        # Both pipes are closed; the exit itself may lag a moment behind.
                        proc.wait(timeout=max(0.0, start + limit - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
                finally:
                    if timed_out or proc.poll() is None:
                        _kill_group(proc)
                    proc.wait()
            if timed_out:
                _kill_group(proc)  # a daemonised grandchild may outlive the leader
            rc = -9 if timed_out else proc.returncode
            result = ProcResult(args, rc, out.text(), err.text(), time.monotonic() - start, timed_out=timed_out)
        with self._lock:
            self.history.append(result)
            del self.history[: -self.history_limit]
        log.info(
            "proc_ran",
            argv=list(args),
            rc=result.returncode,
            duration=round(result.duration, 3),
            timed_out=result.timed_out,
        )
        return result
