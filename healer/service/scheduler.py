"""The daemon's one scheduler: APScheduler 3's ``AsyncIOScheduler`` on the daemon's loop.

Before, four mechanisms ran timed work (a 5-s sleep loop, ``call_later``
timers per verify window, sleep loops for the watchdog and the lag probe, and
the bot's JobQueue, so host health was only checked while Telegram was on).
Now every timed job is an entry here, named, so a second registration under
the same name replaces the first instead of running twice:

* ``every(name, seconds, job)``: an interval job (housekeeping, pruning,
  status, health; other components such as the bot's digest register theirs);
* ``at(name, when, job)``: a one-off at a wall-clock time (a verify window's end).

Jobs are coroutine functions run on the loop; blocking work inside them goes to
a thread or the ingest executor. A job that raises is logged and runs again at
its next time: one failing job never stops the others. Times come from the
injected :class:`~healer.core.clock.Clock`, and :meth:`Scheduler.next_fire`
asks APScheduler's own trigger arithmetic when a job would run after a given
instant, which is how tests check scheduling without sleeping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.job import Job as ApsJob
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from healer.core.clock import Clock

log = structlog.get_logger("healer.service.scheduler")

JobFn = Callable[[], Awaitable[None]]


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class Scheduler:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # misfire_grace_time=None: a job late because the loop was busy still runs (once: coalesce).
        self._aps = AsyncIOScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )

    def every(self, name: str, seconds: float, job: JobFn, *, first: float | None = None) -> None:
        """Run ``job`` every ``seconds``, the first time ``first`` seconds from now (default: one period)."""
        if seconds <= 0:
            raise ValueError(f"job {name!r}: interval must be > 0 seconds, got {seconds}")
        start = _at(self.clock.now() + (seconds if first is None else first))
        trigger = IntervalTrigger(seconds=seconds, start_date=start, timezone=UTC)
        self._add(name, trigger, job)

    def at(self, name: str, when: float, job: JobFn) -> None:
        """Run ``job`` once at Unix time ``when`` (at once if that is past)."""
        self._add(name, DateTrigger(run_date=_at(when), timezone=UTC), job)

    def cancel(self, name: str) -> None:
        if self._aps.get_job(name) is not None:
            self._aps.remove_job(name)

    def names(self) -> list[str]:
        return sorted(j.id for j in self._aps.get_jobs())

    def next_fire(self, name: str, after: float) -> float | None:
        """When job ``name`` would next run after Unix time ``after`` (None: never again, or no such job)."""
        job: ApsJob | None = self._aps.get_job(name)
        if job is None:
            return None
        trigger: BaseTrigger = job.trigger
        now = _at(after) + timedelta(microseconds=1)
        nxt = trigger.get_next_fire_time(None, now)
        # A date trigger answers its run date whatever "now" is; asked again after it, it says None.
        while nxt is not None and nxt < now:
            nxt = trigger.get_next_fire_time(nxt, now)
        return None if nxt is None else nxt.timestamp()

    def start(self) -> None:
        """Start on the running loop."""
        self._aps.start()

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def _add(self, name: str, trigger: BaseTrigger, job: JobFn) -> None:
        async def run() -> None:
            try:
                await job()
            except Exception as exc:  # logged here; the job runs again at its next time
                log.warning("scheduled_job_failed", job=name, error=f"{type(exc).__name__}: {exc}")

        # One job per name, also before start (APScheduler only dedups pending jobs when it starts).
        self.cancel(name)
        self._aps.add_job(run, trigger, id=name, name=name, replace_existing=True)
