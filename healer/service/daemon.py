"""The long-running daemon: one asyncio loop, one ingest thread, a few fix threads.

The loop owns timing and I/O that is naturally async (the bot, webhooks,
signals, sd_notify). Ingestion runs on a single worker thread, which keeps
"one sink caller, in order" true for the tailer and keeps SQLite writes off
the loop. Fixes run on their own small pool, so a slow ``pip install`` never
delays the next line's decision.

Reloads (config file change or SIGHUP) load the new config and patterns in
full before swapping; a bad file is logged, audited and ignored, and the last
good ruleset stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from healer.app.ruleset import Ruleset, load_ruleset
from healer.core.batch import Chunk, Offset
from healer.core.clock import Clock, SystemClock
from healer.core.enums import IncidentStatus
from healer.core.errors import HealerError
from healer.core.jobs import IngestResult, Job
from healer.core.logsetup import configure as configure_logging
from healer.core.notices import Notice
from healer.core.records import Event
from healer.engine.engine import Engine
from healer.service.sdnotify import Notifier
from healer.sources.files import FileSpec, FileTailer
from healer.store.db import Store

log = structlog.get_logger("healer.service.daemon")

RELOAD_DEBOUNCE = 0.15
CHANGE_EVENTS = frozenset({"modified", "created", "moved", "deleted", "closed"})
HOUSEKEEPING_INTERVAL = 5.0
STATUS_INTERVAL = 30.0


class Daemon:
    def __init__(self, config_path: Path, *, clock: Clock | None = None) -> None:
        self.config_path = config_path.resolve()
        self.clock = clock or SystemClock()
        self.rules: Ruleset | None = None
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.tailer: FileTailer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ingest_pool = ThreadPoolExecutor(1, thread_name_prefix="healer-ingest")
        self.fix_pool = ThreadPoolExecutor(4, thread_name_prefix="healer-fix")
        self.fixes: set[Future[Any]] = set()
        self.stopping = asyncio.Event()
        self.notifier = Notifier()
        self.metrics: Any = None
        self.bot: Any = None
        self.webhooks: Any = None
        self.metrics_server: Any = None
        self.journals: list[Any] = []
        self._poll_scheduled = False
        self._poll_again = False
        self._reload_handle: asyncio.TimerHandle | None = None
        self._config_observer: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._reload_lock = asyncio.Lock()

    # -- start-up ------------------------------------------------------------------
    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        try:
            rules = load_ruleset(self.config_path)
        except HealerError as exc:
            configure_logging("info")
            log.error("config_invalid", error=str(exc))
            return 2
        configure_logging(rules.settings.log_level)
        if "HEALER__KILL_SWITCH" in os.environ:
            log.warning(
                "kill_switch_from_environment",
                value=os.environ["HEALER__KILL_SWITCH"],
                note="HEALER__KILL_SWITCH overrides the config file; editing kill_switch there has no effect",
            )
        self.rules = rules
        for err in rules.pattern_errors:
            log.error("pattern_file_rejected", error=str(err))
        s = rules.settings
        try:
            self.store = Store(s.state_dir / "healer.db")
        except HealerError as exc:
            log.error("store_unavailable", error=str(exc))
            return 2
        self._init_metrics()
        self.engine = Engine(s, rules.patterns, self.store, clock=self.clock, notice=self._notice, metrics=self.metrics)
        self.store.audit(
            "daemon_started",
            "daemon",
            {
                "config": str(self.config_path),
                "pid": os.getpid(),
                "patterns": len(rules.patterns),
                "kill_switch": s.kill_switch,
            },
            self.clock.now(),
        )
        await asyncio.get_running_loop().run_in_executor(self.ingest_pool, self._recover)
        self._install_signals()
        self._start_tailer()
        self._watch_config()
        await self._start_extras()
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        self._tasks.append(asyncio.create_task(self._watchdog()))
        log.info(
            "daemon_ready",
            patterns=len(rules.patterns),
            files=[f.path for f in s.sources.files],
            state_dir=str(s.state_dir),
            kill_switch=s.kill_switch,
            dry_run=s.dry_run,
        )
        self.notifier.ready(self._status_line())
        await self.stopping.wait()
        await self._shutdown()
        return 0

    def _recover(self) -> None:
        assert self.engine is not None
        recovered = self.engine.recover()
        if recovered:
            log.warning("attempts_recovered", attempts=[(a, o.value) for a, o in recovered])
        self.engine.finalize_due()

    def _init_metrics(self) -> None:
        from healer.service.metrics import Metrics

        self.metrics = Metrics()
        assert self.rules is not None
        self.metrics.patterns_loaded.set(len(self.rules.patterns))
        self.metrics.kill_switch.set(1 if self.rules.settings.kill_switch else 0)
        self.metrics.record_reload(True, self.clock.now())

    async def _start_extras(self) -> None:
        """Bot, webhooks, journald and /metrics: each optional, each failing alone."""
        assert self.rules is not None
        s = self.rules.settings
        if s.metrics.enabled:
            from healer.service.metrics import measure_loop_lag, serve

            try:
                self.metrics_server = await serve(self.metrics, s.metrics.host, s.metrics.port)
                self._tasks.append(asyncio.create_task(measure_loop_lag(self.metrics, 5.0)))
            except OSError as exc:
                log.error("metrics_unavailable", error=str(exc), port=s.metrics.port)
        webhooks = s.webhooks
        if webhooks is not None and getattr(webhooks, "enabled", False):
            from healer.sources.webhooks.server import WebhookServer

            try:
                self.webhooks = WebhookServer(webhooks, self._webhook_sink, self._audit)
                await self.webhooks.start()
                log.info("webhooks_listening", host=webhooks.host, port=self.webhooks.port)
            except OSError as exc:
                log.error("webhooks_unavailable", error=str(exc))
                self.webhooks = None
        for i, jd in enumerate(s.sources.journald):
            await self._start_journal(i, jd)
        if s.telegram.enabled:
            try:
                from healer.telegram.bot import TelegramBot

                self.bot = TelegramBot(self)
                await self.bot.start()
            except Exception as exc:  # the bot is optional: healing goes on without it
                log.error("telegram_unavailable", error=str(exc))
                self.bot = None
        else:
            log.info("telegram_disabled", reason=f"no token in ${s.telegram.token_env}; set it in .env to enable")

    async def _start_journal(self, i: int, jd: Any) -> None:
        from healer.sources.journald import JournaldSource

        assert self.store is not None
        key = f"journald:{i}:{','.join(jd.units)}"

        async def sink(events: list[Event], cursor: str) -> None:
            await self._ingest_events(events, (key, cursor))

        try:
            src = JournaldSource(
                list(jd.units),
                jd.service,
                sink,
                self.store.cursor(key),
                directory=jd.directory,
                files=[jd.file] if jd.file else (),
            )
            await src.start()
            self.journals.append(src)
        except (OSError, HealerError, TypeError) as exc:
            log.error("journald_unavailable", units=list(jd.units), error=str(exc))

    # -- file ingestion ---------------------------------------------------------------
    def _start_tailer(self) -> None:
        assert self.rules is not None and self.store is not None
        s = self.rules.settings.sources
        offsets = {
            r["path"]: Offset(r["path"], int(r["inode"]), int(r["dev"]), int(r["position"]), r["head_hash"])
            for r in self.store.offsets()
        }
        specs = [FileSpec(f.path, f.service) for f in s.files]
        self.tailer = FileTailer(
            specs,
            offsets,
            self._sink_chunk,
            max_line_bytes=s.max_line_bytes,
            max_catchup_age=s.max_catchup_age,
            clock=self.clock.now,
            on_wakeup=self._wakeup_threadsafe,
        )
        self.tailer.start()
        self._schedule_poll()
        for problem in self.tailer.problems():
            log.warning("source_problem", problem=problem)

    def _wakeup_threadsafe(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._schedule_poll)

    def _schedule_poll(self) -> None:
        if self._poll_scheduled:
            self._poll_again = True
            return
        self._poll_scheduled = True
        assert self.loop is not None
        fut = self.loop.run_in_executor(self.ingest_pool, self._poll)
        fut.add_done_callback(self._poll_done)

    def _poll(self) -> None:
        if self.tailer is not None:
            self.tailer.poll()

    def _poll_done(self, fut: asyncio.Future[None]) -> None:
        self._poll_scheduled = False
        exc = fut.exception()
        if exc is not None:
            log.error("poll_failed", error=f"{type(exc).__name__}: {exc}")
        if self._poll_again:
            self._poll_again = False
            self._schedule_poll()

    def _sink_chunk(self, chunk: Chunk) -> None:
        """Runs on the ingest thread. Raising makes the tailer offer the chunk again."""
        assert self.engine is not None
        result = self.engine.ingest_chunk(chunk)
        self._dispatch(result)

    async def _ingest_events(self, events: Sequence[Event], cursor: tuple[str, str] | None = None) -> IngestResult:
        assert self.engine is not None and self.loop is not None
        engine = self.engine
        if self.metrics is not None:
            for ev in events:
                self.metrics.events.labels(source=ev.source).inc()
        result = await self.loop.run_in_executor(self.ingest_pool, engine.ingest_events, list(events), cursor)
        self._dispatch(result)
        return result

    async def _webhook_sink(self, events: list[Event]) -> None:
        await self._ingest_events(events)

    def _dispatch(self, result: IngestResult) -> None:
        if result.jobs:
            loop = self.loop
            assert loop is not None
            loop.call_soon_threadsafe(self.launch_jobs, list(result.jobs))

    def launch_jobs(self, jobs: Sequence[Job]) -> list[Future[Any]]:
        assert self.engine is not None
        futs = []
        for job in jobs:
            fut = self.fix_pool.submit(self._run_job, job)
            self.fixes.add(fut)
            fut.add_done_callback(self.fixes.discard)
            futs.append(fut)
        return futs

    def _run_job(self, job: Job) -> Any:
        assert self.engine is not None
        try:
            attempt = self.engine.run_job(job)
        except Exception as exc:  # an action bug must not kill the fix thread silently
            log.exception("fix_crashed", error=str(exc))
            return None
        if attempt is not None and attempt.outcome.value == "verifying" and self.loop is not None:
            window = self.engine.settings.engine.verify_window
            self.loop.call_soon_threadsafe(self._finalize_later, window)
        return attempt

    def _finalize_later(self, delay: float) -> None:
        assert self.loop is not None
        self.loop.call_later(delay + 0.05, self._finalize_now)

    def _finalize_now(self) -> None:
        if self.engine is not None and self.loop is not None:
            self.loop.run_in_executor(self.ingest_pool, self.engine.finalize_due)

    # -- notices ----------------------------------------------------------------------
    def _notice(self, notice: Notice) -> None:
        """Called from worker threads; the bot lives on the loop."""
        bot = self.bot
        loop = self.loop
        if bot is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(bot.notify, notice)

    def _audit(self, kind: str, data: Any) -> None:
        """Called on the loop by the webhook receiver; the write goes to the ingest thread."""
        store, loop = self.store, self.loop
        if store is None or loop is None:
            return
        now = self.clock.now()

        def write() -> None:
            try:
                store.audit(kind, "webhooks", dict(data), now)
            except Exception as exc:  # sqlite busy or full disk: logging it beats losing the request
                log.warning("audit_failed", error=str(exc))

        loop.run_in_executor(self.ingest_pool, write)

    # -- reload -------------------------------------------------------------------------
    def _watch_config(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        assert self.rules is not None
        daemon = self
        watched = {str(self.config_path), str(self.config_path.parent / ".env")}
        dirs = {str(self.config_path.parent)}
        for d in self.rules.settings.patterns_dirs:
            if d.is_dir():
                dirs.add(str(d.resolve()))

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                # A read (opened / closed_no_write) is not a change: reloading on it cost
                # ~0.6 s of CPU each time anything read a pattern file.
                if event.event_type not in CHANGE_EVENTS:
                    return
                paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
                if paths & watched or any(
                    p.endswith((".yaml", ".yml"))
                    and str(Path(p).parent) in dirs
                    and str(Path(p).parent) != str(daemon.config_path.parent)
                    for p in paths
                    if p
                ):
                    daemon._reload_threadsafe("file_changed")

        obs = Observer()
        handler = Handler()
        for directory in dirs:
            obs.schedule(handler, directory, recursive=False)
        obs.daemon = True
        obs.start()
        self._config_observer = obs

    def _reload_threadsafe(self, why: str) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.request_reload, why)

    def request_reload(self, why: str) -> None:
        """Debounced: an editor's save is several filesystem events."""
        assert self.loop is not None
        if self._reload_handle is not None:
            self._reload_handle.cancel()
        self._reload_handle = self.loop.call_later(RELOAD_DEBOUNCE, self._spawn_reload, why)

    def _spawn_reload(self, why: str) -> None:
        task = asyncio.create_task(self.reload(why))
        self._tasks.append(task)
        task.add_done_callback(self._tasks_done)

    def _tasks_done(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def reload(self, why: str) -> bool:
        """Serialised: a slow reload can never apply an older file after a newer one."""
        async with self._reload_lock:
            return await self._reload(why)

    async def _reload(self, why: str) -> bool:
        assert self.loop is not None and self.engine is not None and self.store is not None
        self.notifier.reloading()
        old = self.rules
        try:
            rules = await self.loop.run_in_executor(None, load_ruleset, self.config_path)
        except HealerError as exc:
            log.error("config_rejected", why=why, error=str(exc), keeping="last good config")
            self.store.audit("config_rejected", "daemon", {"why": why, "error": str(exc)}, self.clock.now())
            if self.metrics is not None:
                self.metrics.record_reload(False, self.clock.now())
            self.notifier.ready(self._status_line())
            return False
        for err in rules.pattern_errors:
            log.error("pattern_file_rejected", error=str(err))
        changed = _changed_keys(old.settings.raw if old else {}, rules.settings.raw)
        if old is not None and not changed and _pattern_key(old) == _pattern_key(rules):
            log.debug("config_unchanged", why=why)
            self.notifier.ready(self._status_line())
            return True
        self.rules = rules
        self.engine.reconfigure(rules.settings, rules.patterns)
        self.store.audit(
            "config_changed",
            "daemon",
            {
                "why": why,
                "keys": changed,
                "kill_switch": rules.settings.kill_switch,
                "patterns": len(rules.patterns),
                "pattern_errors": [str(e) for e in rules.pattern_errors],
            },
            self.clock.now(),
        )
        log.info(
            "config_reloaded",
            why=why,
            changed=changed,
            kill_switch=rules.settings.kill_switch,
            patterns=len(rules.patterns),
        )
        if self.metrics is not None:
            self.metrics.record_reload(True, self.clock.now())
            self.metrics.patterns_loaded.set(len(rules.patterns))
            self.metrics.kill_switch.set(1 if rules.settings.kill_switch else 0)
        if old is None or old.settings.sources != rules.settings.sources:
            await self._restart_tailer()
        if self.bot is not None:
            with contextlib.suppress(Exception):
                self.bot.reconfigure()
        self.notifier.ready(self._status_line())
        return True

    async def _restart_tailer(self) -> None:
        assert self.loop is not None
        old = self.tailer
        if old is not None:
            await self.loop.run_in_executor(self.ingest_pool, old.stop)
        self._start_tailer()

    # -- signals, housekeeping, shutdown ----------------------------------------------------
    def _install_signals(self) -> None:
        assert self.loop is not None
        self.loop.add_signal_handler(signal.SIGHUP, self.request_reload, "SIGHUP")
        self.loop.add_signal_handler(signal.SIGTERM, self.stop)
        self.loop.add_signal_handler(signal.SIGINT, self.stop)

    def stop(self) -> None:
        self.stopping.set()

    async def _housekeeping(self) -> None:
        """Every few seconds: settle verify windows and due reverts (also of fixes the CLI ran); hourly: prune.

        A cheap indexed query on the ingest thread; no busy loop.
        """
        last_prune = self.clock.monotonic()
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            if self.store is None or self.engine is None or self.loop is None:
                continue
            try:
                await self.loop.run_in_executor(self.ingest_pool, self._settle_due)
                if self.clock.monotonic() - last_prune >= 3600:
                    last_prune = self.clock.monotonic()
                    e = self.engine.settings.engine
                    n = await self.loop.run_in_executor(
                        self.ingest_pool, self.store.prune, self.clock.now(), e.event_retention_days, e.max_events
                    )
                    log.info("store_pruned", events=n)
            except Exception as exc:  # a busy or full store must not end housekeeping
                log.warning("housekeeping_failed", error=f"{type(exc).__name__}: {exc}")

    def _settle_due(self) -> None:
        assert self.engine is not None
        self.engine.finalize_due()
        self.engine.due_reverts()

    async def _watchdog(self) -> None:
        """WATCHDOG=1 from the loop itself: a hung loop stops the pings and systemd restarts us."""
        period = self.notifier.ping_period()
        if period is None:
            return
        last_status = self.clock.monotonic()
        while True:
            self.notifier.watchdog()
            if self.clock.monotonic() - last_status >= STATUS_INTERVAL:
                last_status = self.clock.monotonic()
                self._tasks.append(asyncio.create_task(self._send_status()))
            await asyncio.sleep(period)

    async def _send_status(self) -> None:
        """STATUS= needs a store query; it runs in a thread so a busy store never delays WATCHDOG=1."""
        line = await asyncio.to_thread(self._status_line)
        self.notifier.status(line)

    def _status_line(self) -> str:
        rules = self.rules
        n_open = 0
        if self.store is not None:
            with contextlib.suppress(Exception):
                rows = self.store.query("SELECT count(*) FROM incidents WHERE status = ?", (IncidentStatus.OPEN.value,))
                n_open = int(rows[0][0])
        if self.metrics is not None:
            self.metrics.incidents_open.set(n_open)
        ks = "ON" if rules and rules.settings.kill_switch else "off"
        return f"{len(rules.patterns) if rules else 0} patterns, {n_open} incidents open, kill switch {ks}"

    async def _shutdown(self) -> None:
        """Drain: no new fix starts; running ones get drain_timeout to finish or roll back."""
        self.notifier.stopping()
        log.info("daemon_stopping")
        assert self.engine is not None and self.loop is not None and self.store is not None
        self.engine.draining = True
        for t in self._tasks:
            t.cancel()
        if self._config_observer is not None:
            self._config_observer.stop()
        for j in self.journals:
            with contextlib.suppress(Exception):
                await j.stop()
        if self.webhooks is not None:
            with contextlib.suppress(Exception):
                await self.webhooks.stop()
        if self.bot is not None:
            with contextlib.suppress(Exception):
                await self.bot.stop()
        if self.metrics_server is not None:
            with contextlib.suppress(Exception):
                await self.metrics_server.stop()
        if self.tailer is not None:
            await self.loop.run_in_executor(self.ingest_pool, self.tailer.stop)
        pending = list(self.fixes)
        not_done: set[Any] = set()
        if pending:
            timeout = self.engine.settings.engine.drain_timeout
            _done, not_done = await asyncio.wait([asyncio.wrap_future(f) for f in pending], timeout=timeout)
            if not_done:
                # They keep their 'running' rows; the next start's recover() settles them (verify, or undo).
                log.warning("drain_timeout", running=len(not_done))
        self.ingest_pool.shutdown(wait=True)
        self.fix_pool.shutdown(wait=False, cancel_futures=True)
        self.store.audit("daemon_stopped", "daemon", {"pid": os.getpid(), "unfinished": len(not_done)},
                         self.clock.now())  # fmt: skip
        if not not_done:
            self.store.close()  # never pulled from under a fix thread that is still running
        log.info("daemon_stopped")


def _pattern_key(rules: Ruleset) -> tuple[object, ...]:
    return tuple((p.id, p.regex, p.file, p.line, p.steps, p.approval) for p in rules.patterns) + tuple(
        str(e) for e in rules.pattern_errors
    )


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [prefix or "."] if old != new else []
    out = []
    for k in sorted(set(old) | set(new), key=str):
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in old or k not in new:
            out.append(key)
        else:
            out.extend(_changed_keys(old[k], new[k], key))
    return out


def run(config_path: Path) -> int:
    return asyncio.run(Daemon(config_path).run())
