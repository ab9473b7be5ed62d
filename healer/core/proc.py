"""The one place healer starts processes.

Every subprocess goes through ``Runner.run``: an argv list (never a shell), a
timeout, an environment built from an allowlist, and bounded output. Text from
logs and webhooks is hostile, so the argv is checked for NUL bytes here as a
last line of defence; the actions validate values before they get this far.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from healer.core.errors import ActionRefused

log = structlog.get_logger("healer.core.proc")

# Enough for the runtime to work, nothing that changes what a tool does.
DEFAULT_ENV_ALLOW: tuple[str, ...] = ("PATH", "LANG", "LC_ALL", "HOME", "USER", "LOGNAME", "TZ", "TMPDIR")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OUTPUT_LIMIT = 16_384


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


def _bound(data: bytes, limit: int) -> str:
    text = data.decode("utf-8", "replace")
    if len(text) > limit:
        return text[: limit // 2] + f"\n... [{len(text) - limit} chars cut] ...\n" + text[-limit // 2 :]
    return text


def build_env(allow: Sequence[str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in allow}
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
        input_data: bytes | None = None,
    ) -> ProcResult:
        args = check_argv(argv)
        limit = self.default_timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            proc = subprocess.run(
                args,
                cwd=cwd,
                env=build_env(self.env_allow, env),
                input=input_data,
                stdin=None if input_data is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=limit,
                shell=False,
                check=False,
            )
            result = ProcResult(
                args,
                proc.returncode,
                _bound(proc.stdout, OUTPUT_LIMIT),
                _bound(proc.stderr, OUTPUT_LIMIT),
                time.monotonic() - start,
            )
        except subprocess.TimeoutExpired as exc:
            result = ProcResult(
                args,
                -9,
                _bound(exc.stdout or b"", OUTPUT_LIMIT),
                _bound(exc.stderr or b"", OUTPUT_LIMIT),
                time.monotonic() - start,
                timed_out=True,
            )
        except OSError as exc:
            result = ProcResult(args, 127, "", f"{type(exc).__name__}: {exc}", time.monotonic() - start)
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
