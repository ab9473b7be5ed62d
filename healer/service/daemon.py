"""The long-running daemon: the composition root that wires the service's parts together.

The loop owns timing and I/O that is naturally async (sources, the bot,
signals, sd_notify, /metrics); :mod:`.workers` owns the ingest thread and the
fix pool, :mod:`.scheduler` every timed job, :mod:`.reload` the ruleset in
force and its reloads, :mod:`.lifecycle` the sources. This module only builds
them in order and takes them down in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from healer.app.health import HealthWatch
from healer.app.ruleset import Ruleset, load_ruleset
from healer.app.usecases import Healer
from healer.core.clock import Clock, SystemClock
from healer.core.enums import AuditKind
from healer.core.errors import HealerError
from healer.core.jobs import Job
from healer.core.logsetup import configure as configure_logging
from healer.core.notices import Notice
from healer.core.records import FixAttempt
from healer.engine.engine import Engine
from healer.service import housekeeping as hk
from healer.service.control import Control, ControlServer
from healer.service.lifecycle import SourceSet, StoreCheckpoints
from healer.service.metrics import Metrics, MetricsServer, measure_loop_lag, serve
from healer.service.reload import ConfigWatcher, Reloader
from healer.service.scheduler import JobFn, Scheduler
from healer.service.sdnotify import Notifier
from healer.service.statelock import StateLock
from healer.service.workers import Workers
from healer.sources.base import SourceContext
from healer.store.db import Store

if TYPE_CHECKING:
    from healer.telegram.app import TelegramBot

log = structlog.get_logger("healer.service.daemon")


class Daemon:
    def __init__(self, config_path: Path, *, clock: Clock | None = None) -> None:
        self.config_path = config_path.resolve()
        self.clock = clock or SystemClock()
        self.notifier = Notifier()
        self.scheduler = Scheduler(self.clock)
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self.bot: TelegramBot | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.workers: Workers | None = None
        self.reloader: Reloader | None = None
        self.sources: SourceSet | None = None
        self.facade: Healer | None = None
        self._metrics_server: MetricsServer | None = None
        self._watcher: ConfigWatcher | None = None
        self._lock: StateLock | None = None
        self.control: ControlServer | None = None

    @property
    def rules(self) -> Ruleset | None:
        return self.reloader.rules if self.reloader is not None else None

    @property
    def ingest_pool(self) -> ThreadPoolExecutor:
        assert self.workers is not None
        return self.workers.ingest_pool

    def launch_jobs(self, jobs: Sequence[Job]) -> list[Future[FixAttempt | None]]:
        assert self.workers is not None
        return self.workers.launch_jobs(jobs)

    def every(self, name: str, seconds: float, job: JobFn) -> None:
        """Register a periodic job on the daemon's one scheduler (the bot's digest, for one)."""
        self.scheduler.every(name, seconds, job)

    # -- start-up ------------------------------------------------------------------
    async def run(self) -> int:
        loop = self.loop = asyncio.get_running_loop()
        try:
            rules = load_ruleset(self.config_path)
        except HealerError as exc:
            configure_logging("info")
            log.error("config_invalid", error=str(exc))
            return 2
        configure_logging(rules.settings.log_level)
        for override in rules.settings.overrides:
            # From .env or the environment, they beat the file: editing that key in the YAML has no effect.
            log.warning("config_overridden", override=override, note="this key is not read from the config file")
        for err in rules.pattern_errors:
            log.error("pattern_file_rejected", error=str(err))
        s = rules.settings
        lock = StateLock(s.state_dir)
        try:
            lock.acquire()  # before anything reads a file or counts a line: one daemon per state
        except HealerError as exc:
            log.error("state_locked", error=str(exc))
            return 2
        self._lock = lock
        try:
            store = self.store = Store(s.state_dir / "healer.db")
        except HealerError as exc:
            log.error("store_unavailable", error=str(exc))
            return 2
        engine = self.engine = Engine(
            s, rules.patterns, store, clock=self.clock, notice=self._notice, metrics=self.metrics
        )
        workers = self.workers = Workers(engine, loop, metrics=self.metrics, on_verifying=self._settle_at)
        reloader = self.reloader = Reloader(
            self.config_path,
            rules,
            engine=engine,
            store=store,
            clock=self.clock,
            notifier=self.notifier,
            status=self._status_line,
            on_swapped=self._swapped,
            metrics=self.metrics,
            notice=self._notice,
        )
        self.facade = Healer(lambda: reloader.rules, store, engine, self.clock, workers.run_and_wait)
        self.metrics.bind(
            store,
            self.clock,
            lambda: reloader.rules.settings.kill_switch,
            lambda: len(reloader.rules.patterns),
            lambda: reloader.rules.settings.host,
        )
        self.metrics.record_reload(True, self.clock.now())
        store.audit(
            AuditKind.DAEMON_STARTED,
            "daemon",
            {"config": str(self.config_path), "pid": os.getpid(), "patterns": len(rules.patterns),
             "kill_switch": s.kill_switch},
            self.clock.now(),
        )  # fmt: skip
        await workers.in_ingest(self._recover)
        self._install_signals()
        self.sources = SourceSet(SourceContext(StoreCheckpoints(store), self.clock, self._audit), workers.ingest)
        await self.sources.start(s)
        self._watcher = ConfigWatcher(self.config_path, s.patterns_dirs, self._reload_threadsafe)
        self._watcher.start()
        await self._start_extras(rules)
        self._schedule_jobs(rules)
        self.scheduler.start()
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
        lock.release()
        return 0

    def _recover(self) -> None:
        assert self.engine is not None
        recovered = self.engine.recover()
        if recovered:
            log.warning("attempts_recovered", attempts=[(a, o.value) for a, o in recovered])
        self.engine.finalize_due()

    async def _start_extras(self, rules: Ruleset) -> None:
        """/metrics and the bot: each optional, each failing alone."""
        s = rules.settings
        if s.metrics.enabled:
            try:
                self._metrics_server = await serve(self.metrics, s.metrics.host, s.metrics.port)
            except OSError as exc:
                log.error("metrics_unavailable", error=str(exc), port=s.metrics.port)
        if s.telegram.enabled:
            try:
                from healer.telegram.app import TelegramBot

                assert self.facade is not None and self.reloader is not None
                reloader = self.reloader
                self.bot = TelegramBot(
                    self.facade,
                    lambda: reloader.rules.settings.telegram,
                    clock=self.clock,
                    serial=self.ingest_pool,
                    every=self.every,
                    outbox_path=s.state_dir / "outbox.db",
                    host=lambda: reloader.rules.settings.host,
                )
                await self.bot.start()
            except Exception as exc:  # the bot is optional: healing goes on without it
                log.error("telegram_unavailable", error=str(exc))
                self.bot = None
        else:
            log.info("telegram_disabled", reason=f"no token in ${s.telegram.token_env}; set it in .env to enable")
        await self._start_control(s.state_dir)

    async def _start_control(self, state_dir: Path) -> None:
        """The CLI's way in (``healer approve`` through the daemon); optional like the rest."""
        assert self.facade is not None and self.reloader is not None
        reloader = self.reloader
        control = Control(
            self.facade,
            serial=self.ingest_pool,
            bot=lambda: self.bot,
            overrides=lambda: reloader.rules.settings.overrides,
        )
        server = ControlServer(control, state_dir)
        if await server.start():
            self.control = server

    def _schedule_jobs(self, rules: Ruleset) -> None:
        assert self.engine is not None and self.workers is not None and self.store is not None
        engine, workers, store, sched = self.engine, self.workers, self.store, self.scheduler
        sched.every("settle", hk.SWEEP_INTERVAL, lambda: hk.settle_due(engine, workers))
        retry_every = rules.settings.preconditions.retry_every
        sched.every("preconditions", retry_every, lambda: hk.retry_blocked(engine, workers))
        sched.every("prune", hk.PRUNE_INTERVAL, lambda: hk.prune(engine, store, workers, self.clock))
        sched.every("status", hk.STATUS_INTERVAL, lambda: hk.refresh_status(self.notifier, self._status_line))
        # Host health runs whether or not Telegram is on; with no bot, the log is where it is seen.
        watch = HealthWatch(lambda: (self.reloader.rules if self.reloader else rules).settings.health)
        interval = rules.settings.telegram.health_interval
        sched.every(
            "health", interval, lambda: hk.check_health(watch, self.clock, self._notice), first=min(5.0, interval)
        )
        if self._metrics_server is not None:
            sched.every("loop_lag", hk.LAG_INTERVAL, lambda: measure_loop_lag(self.metrics, 0.1, iterations=1))
        period = self.notifier.ping_period()
        if period is not None:
            # WATCHDOG=1 from a loop job: a hung loop stops the pings and systemd restarts us.
            sched.every("watchdog", period, self._ping, first=0.0)

    async def _ping(self) -> None:
        self.notifier.watchdog()

    def _settle_at(self, attempt: FixAttempt) -> None:
        """On the loop: date jobs at the end of the verify window and at a timed revert (the sweep is the net)."""
        assert self.engine is not None and self.workers is not None
        engine, workers = self.engine, self.workers
        when = self.clock.now() + engine.settings.engine.verify_window + hk.SETTLE_MARGIN
        self.scheduler.at(f"settle:{attempt.id}", when, lambda: hk.settle_due(engine, workers))
        if attempt.revert_at is not None:  # a model fallback goes back to the primary on time, not at the next sweep
            revert = attempt.revert_at + hk.SETTLE_MARGIN
            self.scheduler.at(f"revert:{attempt.id}", revert, lambda: hk.settle_due(engine, workers))

    # -- notices, audit, reload -----------------------------------------------------------
    def _notice(self, notice: Notice) -> None:
        """Called from worker threads; the bot lives on the loop."""
        bot, loop = self.bot, self.loop
        if bot is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(bot.notify, notice)

    def _audit(self, kind: AuditKind, data: Mapping[str, object]) -> None:
        """Called on the loop by sources; the write goes to the ingest thread."""
        store, workers = self.store, self.workers
        if store is None or workers is None:
            return
        now, detail = self.clock.now(), dict(data)

        def write() -> None:
            try:
                store.audit(kind, "webhooks", detail, now)
            except Exception as exc:  # sqlite busy or full disk: logging it beats losing the request
                log.warning("audit_failed", error=str(exc))

        workers.ingest_pool.submit(write)

    def _reload_threadsafe(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.request_reload, "file_changed")

    def request_reload(self, why: str) -> None:
        if self.reloader is not None:
            self.reloader.request(why)

    async def reload(self, why: str) -> bool:
        assert self.reloader is not None
        return await self.reloader.reload(why)

    async def _swapped(self, old: Ruleset, new: Ruleset) -> None:
        assert self.sources is not None
        restarted = await self.sources.reload(new.settings)
        if restarted:
            log.info("sources_restarted", sources=restarted)
        if self.bot is not None:
            with contextlib.suppress(Exception):
                self.bot.reconfigure()

    def _status_line(self) -> str:
        return hk.status_line(self.rules, self.store)

    # -- signals, shutdown ------------------------------------------------------------------
    def _install_signals(self) -> None:
        assert self.loop is not None
        self.loop.add_signal_handler(signal.SIGHUP, self.request_reload, "SIGHUP")
        self.loop.add_signal_handler(signal.SIGTERM, self.stop)
        self.loop.add_signal_handler(signal.SIGINT, self.stop)

    def stop(self) -> None:
        self.stopping.set()

    async def _shutdown(self) -> None:
        """Drain: no new fix starts; running ones get drain_timeout to finish or roll back."""
        self.notifier.stopping()
        log.info("daemon_stopping")
        assert self.engine is not None and self.store is not None and self.workers is not None
        self.engine.draining = True
        self.scheduler.shutdown()
        if self.reloader is not None:
            self.reloader.cancel()
        if self._watcher is not None:
            self._watcher.stop()
        if self.sources is not None:
            await self.sources.stop()
        for part in (self.control, self.bot, self._metrics_server):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.stop()
        running = await self.workers.drain(self.engine.settings.engine.drain_timeout)
        if running:
            # They keep their 'running' rows; the next start's recover() settles them (verify, or undo).
            log.warning("drain_timeout", running=running)
        self.workers.shutdown()
        self.store.audit(
            AuditKind.DAEMON_STOPPED, "daemon", {"pid": os.getpid(), "unfinished": running}, self.clock.now()
        )
        if not running:
            self.store.close()  # never pulled from under a fix thread that is still running
        log.info("daemon_stopped")


def run(config_path: Path) -> int:
    return asyncio.run(Daemon(config_path).run())
