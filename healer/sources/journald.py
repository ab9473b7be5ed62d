"""Follow the systemd journal for a few units and hand entries on as Events.

Two readers, chosen at start:

* ``systemd.journal`` (python ``systemd-python``) when importable: the
  journal's own library, woken through its inotify file descriptor on the
  event loop (``loop.add_reader``), so no thread and no polling.
* otherwise ``journalctl --follow --output=json`` as a child process.
  The follower is the one place healer starts a process without ``healer.core.proc.Runner``
  (the bounded "where is the end" query before it does use ``Runner``):
  ``Runner`` is for bounded commands with a timeout and captured output, while
  this is a stream that lives as long as the daemon. It still follows the same
  rules: an argv list (never a shell), an allowlisted environment, bounded
  line length.

Every batch goes to the sink as an ``EventBatch`` with the cursor of its
last entry; the engine stores the cursor in the same SQLite transaction as the
events, so after a crash we resume exactly after the last stored entry and
neither lose nor repeat one.

Why the supervision loop: fail2ban's most reported bug is a journal follower
that silently stops (journald restarted, files rotated or vacuumed) while the
daemon looks healthy. If the reader ends for any reason we log a warning once,
restart it from the last cursor with exponential backoff, and say so when it
is streaming again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
from collections.abc import Sequence
from typing import Any

import structlog

from healer.core.batch import Cursor, EventBatch
from healer.core.proc import DEFAULT_ENV_ALLOW, Runner, build_env
from healer.core.records import Event
from healer.settings.schema import JournaldSourceSettings
from healer.sources.base import Checkpoints, Sink, SourceContext
from healer.sources.journal_entries import SOURCE, entry_to_event, severity_of_priority, text_of

__all__ = ["SOURCE", "JournaldSource", "entry_to_event", "from_settings", "severity_of_priority"]

log = structlog.get_logger("healer.sources.journald")

LINE_LIMIT = 1 << 20  # one JSON entry; longer lines are skipped, not fatal
BATCH_MAX = 200
BATCH_WAIT = 0.05  # seconds to gather more lines into one sink call
PIN_TIMEOUT = 15.0  # reading one entry; a journal that slow is reported by the follower's own retries

_sd_journal: Any
try:  # pragma: no cover - depends on the host
    # importlib, not "from systemd import journal": the repository has a
    # systemd/ folder (unit files) that type checkers would take for it.
    _sd_journal = importlib.import_module("systemd.journal")
    HAVE_NATIVE = True
except ImportError:  # pragma: no cover - depends on the host
    _sd_journal = None
    HAVE_NATIVE = False


class JournaldSource:
    """Stream journal entries of ``units`` into ``sink`` from ``cursor`` on.

    With no cursor we start at the end of the journal: acting on history would
    "fix" things that were fixed long ago. ``from_start=True`` reads the whole
    journal instead (tests, one-off replays). ``files``/``directory`` select a
    journal other than the system one (tests, a copied journal).
    """

    def __init__(
        self,
        units: list[str],
        service: str,
        cursor: str | None,
        *,
        key: str = "",
        spec: object = None,
        resume: Checkpoints | None = None,
        files: Sequence[str] = (),
        directory: str | None = None,
        from_start: bool = False,
        native: bool | None = None,
        journalctl: str = "journalctl",
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.units = list(units)
        self.service = service
        self.sink: Sink | None = None
        self.cursor = cursor
        self.checkpoint_key = key or f"journald:{','.join(self.units)}"
        self.name = self.checkpoint_key
        self.spec = spec
        self._resume = resume
        # Absolute paths: journalctl --follow on a relative --file fails
        # ("Failed to get journal fd") and, worse, exits 0.
        self.files = tuple(os.path.abspath(f) for f in files)
        self.directory = os.path.abspath(directory) if directory else None
        self.from_start = from_start
        self.native = HAVE_NATIVE if native is None else native and HAVE_NATIVE
        self.journalctl = journalctl
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.restarts = 0
        self.path = "native" if self.native else "journalctl"
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._streaming = asyncio.Event()

    @property
    def pid(self) -> int | None:
        """Pid of the current journalctl child (None for the native reader)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def start(self, sink: Sink) -> None:
        if self._task is not None:
            return
        self.sink = sink
        if self._resume is not None:
            # Read at start, not at construction: on a reload the old follower has only now stopped.
            self.cursor = self._resume.cursor(self.checkpoint_key)
        self._stopping = False
        self._task = asyncio.create_task(self._supervise(), name=f"journald:{','.join(self.units)}")

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        await self._terminate()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("journald_stopped", units=self.units)

    # -- supervision ---------------------------------------------------------

    async def _supervise(self) -> None:
        resumed = bool(self.cursor)
        position = "cursor" if resumed else "start" if self.from_start else await self._pin_tail()
        # Logged only once the position is fixed: "started" promises that every
        # entry written from now on will be read (the systemd tier waits for it).
        log.info("journald_started", units=self.units, reader=self.path, cursor=resumed, position=position)
        delay = self.backoff_initial
        warned = False
        while not self._stopping:
            got_any = False
            detail = ""
            try:
                if self.native:
                    got_any = await self._run_native()
                else:
                    got_any, detail = await self._run_journalctl()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a reader bug must not end the follow loop
                detail = repr(err)[:300]
                log.exception("journald_reader_failed", units=self.units)
            if self._stopping:
                return
            if not got_any and self.cursor and "seek to cursor" in detail:
                # A cursor journalctl cannot parse would fail the same way
                # forever. Resume from the end: some entries may be missed,
                # which is better than never reading again, and we say so.
                log.error("journald_cursor_invalid", units=self.units, cursor=self.cursor, detail=detail)
                self.cursor = None
                self.from_start = False
            if got_any:
                delay = self.backoff_initial
                warned = False
            if not warned:
                log.warning(
                    "journald_stream_ended",
                    units=self.units,
                    reader=self.path,
                    detail=detail,
                    restart_in=delay,
                    cursor=self.cursor,
                )
                warned = True
            self.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _deliver(self, batch: list[Event], cursor: str) -> None:
        assert self.sink is not None  # set by start(), before the reader runs
        await self.sink(EventBatch(tuple(batch), Cursor(self.checkpoint_key, cursor)))
        self.cursor = cursor
        if not self._streaming.is_set():
            self._streaming.set()
            if self.restarts:
                log.info("journald_stream_resumed", units=self.units, restarts=self.restarts)

    async def _pin_tail(self) -> str:
        """Fix "the end of the journal" as a cursor before following; return how we start.

        ``journalctl --follow --lines=0`` takes the end as it is when the child
        gets round to opening the journal, which on a loaded host is long after
        start(): entries logged in between were silently skipped (the live
        systemd tier saw a fresh healer miss its first lines). The cursor of the
        journal's last entry, whatever its unit, pins the position now; the
        follower then reads everything after it. An empty or unreadable journal
        keeps the old ``--lines=0`` start (nothing to pin, or the follower's own
        retry loop reports the problem).
        """
        if self.native:
            return "tail"  # the native reader seeks the tail synchronously, before its first await
        argv = [self.journalctl, "--lines=1", "--output=json", "--all", "--no-pager", "--quiet"]
        argv += [f"--file={f}" for f in self.files]
        if self.directory:
            argv.append(f"--directory={self.directory}")
        env = {"SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""}
        result = await asyncio.to_thread(Runner().run, argv, timeout=PIN_TIMEOUT, env=env)
        cursor = ""
        for line in result.stdout.splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    cursor = text_of(entry.get("__CURSOR")) or cursor
        if not result.ok or not cursor:
            return "tail"
        self.cursor = cursor
        return "pinned tail"

    # -- journalctl child ----------------------------------------------------

    def argv(self) -> list[str]:
        argv = [self.journalctl, "--follow", "--output=json", "--all", "--no-pager", "--quiet"]
        if self.cursor:
            argv.append(f"--after-cursor={self.cursor}")
        elif self.from_start:
            argv.append("--lines=all")
        else:
            argv.append("--lines=0")
        argv += [f"--unit={u}" for u in self.units]
        argv += [f"--file={f}" for f in self.files]
        if self.directory:
            argv.append(f"--directory={self.directory}")
        return argv

    async def _run_journalctl(self) -> tuple[bool, str]:
        """Run one journalctl child until it exits; return (streamed anything, stderr tail)."""
        self._streaming.clear()
        env = build_env(DEFAULT_ENV_ALLOW, {"SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""})
        proc = await asyncio.create_subprocess_exec(
            *self.argv(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=LINE_LIMIT,
        )
        self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        stderr_task = asyncio.create_task(_tail(proc.stderr))
        got_any = False
        pump_ok = False
        try:
            got_any = await self._pump(proc.stdout)
            pump_ok = True
        finally:
            # If the pump raised (the sink failed, e.g. a locked store) a --follow
            # journalctl never exits by itself: end it, so the outer loop restarts
            # from the last committed cursor instead of hanging here.
            if proc.returncode is None and (self._stopping or not pump_ok):
                await self._terminate()
            await proc.wait()
            err_tail = await stderr_task
            self._proc = None
        return got_any, f"exit {proc.returncode}: {err_tail}".strip()

    async def _pump(self, stdout: asyncio.StreamReader) -> bool:
        got_any = False
        while True:
            line = await _readline(stdout, None)
            if line is None:
                return got_any
            batch: list[Event] = []
            cursor = self._absorb(line, batch, "")
            while len(batch) < BATCH_MAX:
                more = await _readline(stdout, BATCH_WAIT)
                if more is None:
                    break
                cursor = self._absorb(more, batch, cursor)
            if cursor:
                await self._deliver(batch, cursor)
                got_any = True

    def _absorb(self, line: bytes, batch: list[Event], cursor: str) -> str:
        if not line.strip():
            return cursor
        try:
            entry = json.loads(line)
        except ValueError:
            log.warning("journald_bad_line", sample=line[:120].decode("utf-8", "replace"))
            return cursor
        if not isinstance(entry, dict):
            return cursor
        ev = entry_to_event(entry, self.service)
        if ev is not None:
            batch.append(ev)
        return text_of(entry.get("__CURSOR")) or cursor

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 3.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    # -- native reader -------------------------------------------------------

    async def _run_native(self) -> bool:  # pragma: no cover - needs systemd-python
        """Follow with ``systemd.journal.Reader``; returns when the reader breaks."""
        assert _sd_journal is not None
        self._streaming.clear()
        kwargs: dict[str, Any] = {}
        if self.files:
            kwargs["files"] = list(self.files)
        elif self.directory:
            kwargs["path"] = self.directory
        reader = _sd_journal.Reader(**kwargs)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        got_any = False
        try:
            for unit in self.units:
                reader.add_match(_SYSTEMD_UNIT=unit)
                reader.add_disjunction()
                reader.add_match(UNIT=unit)
                reader.add_disjunction()
            if self.cursor:
                try:
                    reader.seek_cursor(self.cursor)
                    reader.get_next()  # the cursor's own entry is already stored
                except (OSError, ValueError) as err:  # same policy as the journalctl path
                    log.error("journald_cursor_invalid", units=self.units, cursor=self.cursor, detail=str(err))
                    self.cursor = None
                    reader.seek_tail()
                    reader.get_previous()
            elif not self.from_start:
                reader.seek_tail()
                reader.get_previous()
            fd = reader.fileno()
            loop.add_reader(fd, wake.set)
            try:
                while not self._stopping:
                    batch: list[Event] = []
                    cursor = ""
                    while len(batch) < BATCH_MAX:
                        entry = reader.get_next()
                        if not entry:
                            break
                        cursor = str(entry.get("__CURSOR", "")) or cursor
                        ev = entry_to_event(entry, self.service)
                        if ev is not None:
                            batch.append(ev)
                    if cursor:
                        await self._deliver(batch, cursor)
                        got_any = True
                        continue
                    wake.clear()
                    await wake.wait()
                    reader.process()  # acknowledge the inotify wake-up
            finally:
                loop.remove_reader(fd)
        finally:
            reader.close()
        return got_any


async def _readline(stream: asyncio.StreamReader, timeout: float | None) -> bytes | None:
    """Next line, or None at EOF / on timeout. Over-long lines are dropped, not fatal."""
    while True:
        try:
            if timeout is None:
                line = await stream.readline()
            else:
                line = await asyncio.wait_for(stream.readline(), timeout)
        except TimeoutError:
            return None
        except ValueError:  # longer than LINE_LIMIT: the stream discarded it
            log.warning("journald_line_too_long", limit=LINE_LIMIT)
            continue
        return line if line else None


async def _tail(stream: asyncio.StreamReader, keep: int = 2000) -> str:
    """Drain stderr (a full pipe would stall journalctl) and keep its last bytes."""
    buf = b""
    while chunk := await stream.read(4096):
        buf = (buf + chunk)[-keep:]
    return buf.decode("utf-8", "replace").strip()


def from_settings(settings: Sequence[JournaldSourceSettings], ctx: SourceContext) -> list[JournaldSource]:
    """One follower per configured ``sources.journald`` entry, each resuming from its stored cursor."""
    out = []
    for i, jd in enumerate(settings):
        # The index keeps two entries for the same units apart; it is also the key cursors were stored under.
        key = f"journald:{i}:{','.join(jd.units)}"
        out.append(
            JournaldSource(
                list(jd.units),
                jd.service,
                None,
                key=key,
                resume=ctx.checkpoints,
                spec=(i, jd),
                directory=jd.directory,
                files=[jd.file] if jd.file else (),
            )
        )
    return out
