"""Transitional: today's daemon builds the bot with ``TelegramBot(self)``; this adapts that call.

The bot proper (``telegram/app.py``) takes the ``Healer`` facade and a few
callables, never the daemon. Until ``healer/service/daemon.py`` builds it
that way, this adapter derives them from the daemon's attributes, typed by a
Protocol so that nothing here imports the service layer. It also runs the
two things the service will own after the merge: a loop-based ``every``
(the service's one scheduler replaces it) and the periodic ``HealthWatch``
(the service schedules it whether or not Telegram is on). Delete this module
when the daemon is rewired.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any, Protocol

import structlog

from healer.app.health import HealthWatch
from healer.app.ruleset import Ruleset
from healer.app.usecases import Healer
from healer.core.clock import Clock
from healer.core.jobs import Job
from healer.core.records import FixAttempt
from healer.engine.engine import Engine
from healer.store.db import Store
from healer.telegram import app

log = structlog.get_logger("healer.telegram")

FIX_WAIT = 120.0  # how long "fix errors" or Approve waits for fixes before answering "still running"


class DaemonLike(Protocol):
    @property
    def rules(self) -> Ruleset | None: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def engine(self) -> Engine | None: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def ingest_pool(self) -> Executor: ...

    def launch_jobs(self, jobs: Sequence[Job]) -> list[Future[Any]]: ...


class TelegramBot(app.TelegramBot):
    def __init__(self, daemon: DaemonLike) -> None:
        if daemon.store is None or daemon.engine is None or daemon.rules is None:
            raise RuntimeError("the bot starts after the store, the engine and the ruleset")

        def rules() -> Ruleset:
            assert daemon.rules is not None
            return daemon.rules

        def run_jobs(jobs: Sequence[Job]) -> list[FixAttempt | None]:
            futs = daemon.launch_jobs(list(jobs))
            done, _ = concurrent.futures.wait(futs, timeout=FIX_WAIT)
            return [f.result() if f in done and f.exception() is None else None for f in futs]

        self._periodic: dict[str, asyncio.Task[None]] = {}
        facade = Healer(rules, daemon.store, daemon.engine, daemon.clock, run_jobs)
        super().__init__(
            facade, lambda: rules().settings.telegram, clock=daemon.clock, serial=daemon.ingest_pool, every=self._every
        )
        self._health = HealthWatch(lambda: rules().settings.health)
        self._health_clock = daemon.clock

    async def start(self) -> None:
        await super().start()
        self._every("health", self.settings.health_interval, self._health_check)

    def reconfigure(self) -> None:
        super().reconfigure()
        self._every("health", self.settings.health_interval, self._health_check)

    async def _health_check(self) -> None:
        notice = await asyncio.to_thread(self._health.check, self._health_clock.now())
        if notice is not None:
            self.notify(notice)

    def _every(self, name: str, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        old = self._periodic.pop(name, None)
        if old is not None:
            old.cancel()

        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await job()
                except Exception as exc:  # one failed run must not end the schedule
                    log.error("periodic_job_failed", job=name, error=f"{type(exc).__name__}: {exc}")

        self._periodic[name] = asyncio.get_running_loop().create_task(loop(), name=f"telegram-{name}")

    async def stop(self) -> None:
        for t in self._periodic.values():
            t.cancel()
        for t in self._periodic.values():
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await super().stop()
