"""Cross-thread signalling: the observer and timer threads ask, the poll thread reads.

watchdog's observer thread and the safety-rescan timer never read a file; they
only set a flag and wake the consumer: ``on_wakeup()`` supplied by the daemon,
or our own worker thread, which then calls ``poll``.  Wakeups coalesce, so a
burst of inotify events costs one poll.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("healer.sources.tail")


class Wakeup:
    """The wake/rescan flags and the thread that polls (own worker) or nudges (timer mode)."""

    def __init__(self, on_wakeup: Callable[[], None] | None, rescan_interval: float) -> None:
        self._on_wakeup = on_wakeup
        self._rescan_interval = rescan_interval
        self._flag_lock = threading.Lock()
        self._rescan_wanted = True
        self._wake_pending = False
        self._wake_event = threading.Event()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._due: float | None = None  # seconds until a held event must go out, from the last poll

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def want_rescan(self) -> None:
        """Any thread: the next poll must re-expand the globs (does not wake by itself)."""
        with self._flag_lock:
            self._rescan_wanted = True

    def begin_poll(self) -> bool:
        """Poll thread, at the start of a poll: clear the pending wake; whether a rescan was asked for."""
        with self._flag_lock:
            self._wake_pending = False
            rescan = self._rescan_wanted
            self._rescan_wanted = False
        return rescan

    def take_rescan(self) -> bool:
        """Poll thread: whether a rescan was asked for since the last call, clearing the request."""
        with self._flag_lock:
            rescan = self._rescan_wanted
            self._rescan_wanted = False
        return rescan

    def wake(self, *, rescan: bool = False) -> None:
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

    def due_in(self, seconds: float | None) -> None:
        """Poll thread: wake again after ``seconds`` (a held multi-line event goes out); None: the usual interval."""
        with self._flag_lock:
            # A floor, so a flush whose sink keeps failing retries at a bounded rate, not in a spin.
            self._due = None if seconds is None else max(0.1, seconds)

    def _timeout(self) -> float:
        with self._flag_lock:
            due = self._due
        return self._rescan_interval if due is None else min(self._rescan_interval, due)

    def reset(self) -> None:
        """Before a (re)start: a previous stop() no longer applies."""
        self._stop_event.clear()

    def start(self, poll: Callable[[], None]) -> None:
        name = "healer-tailer" if self._on_wakeup is None else "healer-tailer-timer"
        self._thread = threading.Thread(target=self._run, args=(poll,), name=name, daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        """Tell the thread to end (it may be waiting for the next interval)."""
        self._stop_event.set()
        self._wake_event.set()

    def join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self, poll: Callable[[], None]) -> None:
        """Own worker (no ``on_wakeup``) or safety-rescan timer (with ``on_wakeup``)."""
        while not self._stop_event.is_set():
            timeout = self._timeout()
            woke = self._wake_event.wait(timeout=timeout)
            self._wake_event.clear()
            if self._stop_event.is_set():
                return
            if self._on_wakeup is not None:
                # Timer mode: the daemon's worker polls; retries and rescans need a nudge.
                with self._flag_lock:
                    self._wake_pending = False
                self.wake(rescan=True)
                continue
            if not woke and timeout >= self._rescan_interval:
                with self._flag_lock:
                    self._rescan_wanted = True
            try:
                poll()
            except Exception:
                log.exception("tail_poll_failed")
