"""The bodies of the daemon's scheduled jobs; :mod:`healer.service.scheduler` decides when they run.

Each is a small object holding what it reads, so a test can call it with a
fake clock and a real store and look at what it did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from healer.app.health import HealthWatch
from healer.app.ruleset import Ruleset
from healer.core.clock import Clock
from healer.core.notices import NoticeSink
from healer.engine.engine import Engine
from healer.service.sdnotify import Notifier
from healer.service.workers import Workers
from healer.store.db import Store

log = structlog.get_logger("healer.service.housekeeping")

SWEEP_INTERVAL = 5.0
"""Safety sweep for verify windows and timed reverts. Each window also gets its own date job;
the sweep catches fixes the CLI ran (``healer fix``/``approve`` in another process) and windows left
over from before a restart, so it is short: two indexed queries every 5 s cost nothing measurable."""
PRUNE_INTERVAL = 3600.0
STATUS_INTERVAL = 30.0
LAG_INTERVAL = 5.0
SETTLE_MARGIN = 0.05
"""Seconds after ``verify_until`` the date job runs: the engine settles windows that ended *before* now."""


async def settle_due(engine: Engine, workers: Workers) -> None:
    """Settle ended verify windows, due reverts (also of fixes the CLI ran) and expired approvals."""

    def settle() -> None:
        engine.finalize_due()
        engine.due_reverts()
        engine.expire_approvals()

    await workers.in_ingest(settle)


async def retry_blocked(engine: Engine, workers: Workers) -> None:
    """Fixes a precondition blocked: probe (in a thread), decide the cleared ones again (ingest), run them."""
    cleared = await asyncio.to_thread(engine.cleared_blocks)
    if cleared:
        workers.dispatch(await workers.in_ingest(engine.retry_blocked, cleared))


async def prune(engine: Engine, store: Store, workers: Workers, clock: Clock) -> None:
    e = engine.settings.engine

    def both() -> tuple[int, int]:
        now = clock.now()
        events = store.prune(now, e.event_retention_days, e.max_events)
        return events, store.prune_incidents(now, e.event_retention_days, e.max_incidents)

    events, incidents = await workers.in_ingest(both)
    log.info("store_pruned", events=events, incidents=incidents)


def status_line(rules: Ruleset | None, store: Store | None) -> str:
    """The one-line STATUS= text systemd shows; a store error reads as 0 rather than failing."""
    n_open = 0
    if store is not None:
        try:
            n_open = store.count_open_incidents()
        except Exception as exc:  # a busy or broken store must not end the status refresh
            log.debug("status_query_failed", error=str(exc))
    ks = "ON" if rules and rules.settings.kill_switch else "off"
    return f"{len(rules.patterns) if rules else 0} patterns, {n_open} incidents open, kill switch {ks}"


async def refresh_status(notifier: Notifier, line: Callable[[], str]) -> None:
    """STATUS= needs a store query; it runs in a thread so a busy store never delays the loop."""
    notifier.status(await asyncio.to_thread(line))


async def check_health(watch: HealthWatch, clock: Clock, notice: NoticeSink) -> None:
    """One host health check (psutil, in a thread); a crossed or cleared threshold becomes a notice."""
    said = await asyncio.to_thread(watch.check, clock.now())
    if said is not None:
        # Logged too: with Telegram off the log is where an operator sees it.
        log.warning("host_health", severity=said.severity.value, text=said.text)
        notice(said)
