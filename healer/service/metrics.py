"""Prometheus metrics for healer itself, served from the daemon's own loop.

Why prometheus-client rather than hand-written exposition text: the format
has escaping rules for label values (backslash, quote, newline), ``_total``
and ``_created`` conventions, HELP/TYPE ordering, and an OpenMetrics variant;
label values here include pattern ids and source names from config, and
getting escaping wrong corrupts the whole scrape. The library is the
reference implementation, thread-safe (actions run in worker threads and
increment counters from there), and small.

Each ``Metrics`` owns a private ``CollectorRegistry`` instead of the global
default one, so tests (and a reload that rebuilds the daemon) can create as
many as they like without "Duplicated timeseries" errors.

State gauges (open incidents, circuit breaker, kill switch, patterns loaded)
are read when Prometheus scrapes, through ``Gauge.set_function`` bound in
:meth:`Metrics.bind`: a pushed value goes stale the moment nobody pushes, as
``healer_circuit_open`` did (it stayed 1 after the breaker closed, and the
shipped alert fired for ever). The scrape renders in a thread, since the
store query must never block the loop.

Every series carries ``host``, the healer's ``host`` setting (issue 17): in
a fleet the dashboards and alert rules group by it, and it is the same name
the chat messages and the Alertmanager route trees use. It comes from the
exporter rather than only from Prometheus relabelling because healer's config
is where that name is decided; Prometheus' ``instance`` stays the scrape
address. ``docs/fleet/prometheus-healer.yml`` scrapes with ``honor_labels:
true`` (else Prometheus would rename ours ``exported_host``) and derives the
same label from the target address for ``up``, which healer cannot label.
The label is added at collection by :class:`HostLabelled`, so no metric's
call sites know about it, and a reload that renames the host takes effect at
the next scrape.

Label cardinality is bounded by config, never by input: ``source`` and
``pattern`` are ids from the config file, ``action``/``outcome``/``verdict``/
``reason`` are enum values. Never put a log message or a path in a label.

The HTTP endpoint runs on aiohttp inside the daemon's asyncio loop (no extra
thread, as ``prometheus_client.start_http_server`` would start) and binds
loopback by default: the metrics reveal which services are failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from healer.core.clock import Clock

log = structlog.get_logger("healer.service.metrics")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9322


class StoreState(Protocol):
    """The store reads the gauges need (``healer.store.db.Store`` has them)."""

    def count_open_incidents(self) -> int: ...

    def breaker_open_until(self) -> float | None: ...


HOST_LABEL = "host"


class HostLabelled(Collector):
    """The families of ``inner`` with ``host=<host()>`` added to every sample."""

    def __init__(self, inner: CollectorRegistry, host: Callable[[], str]) -> None:
        self.inner = inner
        self.host = host

    def collect(self) -> Iterable[Metric]:
        host = self.host()
        for fam in self.inner.collect():
            out = Metric(fam.name, fam.documentation, fam.type, fam.unit)
            out.samples = [s._replace(labels={**s.labels, HOST_LABEL: host}) for s in fam.samples]
            yield out


class Metrics:
    """Every metric healer exports, registered on one private registry.

    ``registry`` is what is served: ``own`` (where the metrics live) seen
    through :class:`HostLabelled`.
    """

    def __init__(self, host: str = "") -> None:
        self.host: Callable[[], str] = lambda: host
        r = self.own = CollectorRegistry(auto_describe=True)
        self.registry = CollectorRegistry()
        self.registry.register(HostLabelled(r, lambda: self.host()))
        # Counters: prometheus-client appends "_total" to the exposed name.
        self.lines_read = Counter("healer_lines_read", "Lines read from log sources.", ["source"], registry=r)
        self.events = Counter("healer_events", "Events produced by sources.", ["source"], registry=r)
        self.matches = Counter("healer_matches", "Events that matched a pattern.", ["pattern"], registry=r)
        self.fix_attempts = Counter(
            "healer_fix_attempts",
            "Finished fix attempts by action chain and outcome.",
            ["action", "outcome"],
            registry=r,
        )
        self.decisions = Counter("healer_decisions", "Decisions taken on matches.", ["verdict", "reason"], registry=r)
        self.incidents_opened = Counter(
            "healer_incidents_opened",
            "Incidents opened or reopened, by their triage then (P0..P3) and pattern mode (active, shadow).",
            ["priority", "mode"],
            registry=r,
        )
        self.config_reloads = Counter(
            "healer_config_reloads", "Config reloads (SIGHUP) by result.", ["result"], registry=r
        )
        # Gauges.
        self.incidents_open = Gauge("healer_incidents_open", "Incidents currently open.", registry=r)
        self.kill_switch = Gauge("healer_kill_switch", "1 when the kill switch stops all fixes, else 0.", registry=r)
        self.circuit_open = Gauge(
            "healer_circuit_open", "1 when the failure circuit breaker is open, else 0.", registry=r
        )
        self.loop_lag = Gauge(
            "healer_loop_lag_seconds",
            "How late the asyncio loop woke up for the last lag probe.",
            registry=r,
        )
        self.last_reload_timestamp = Gauge(
            "healer_last_reload_timestamp_seconds",
            "Unix time of the last config load attempt (startup or reload).",
            registry=r,
        )
        self.last_reload_success = Gauge(
            "healer_last_reload_success", "1 if the last config load succeeded, else 0.", registry=r
        )
        self.patterns_loaded = Gauge("healer_patterns_loaded", "Patterns currently loaded and active.", registry=r)

    def bind(
        self,
        store: StoreState,
        clock: Clock,
        kill_switch: Callable[[], bool],
        patterns_loaded: Callable[[], int],
        host: Callable[[], str] | None = None,
    ) -> None:
        """Read the state gauges from ``store`` and the settings in force (``host`` too) at every scrape."""
        if host is not None:
            self.host = host

        def circuit_open() -> float:
            until = store.breaker_open_until()
            return 1.0 if until is not None and until > clock.now() else 0.0

        self.circuit_open.set_function(circuit_open)
        self.incidents_open.set_function(lambda: float(store.count_open_incidents()))
        self.kill_switch.set_function(lambda: 1.0 if kill_switch() else 0.0)
        self.patterns_loaded.set_function(lambda: float(patterns_loaded()))

    def record_reload(self, ok: bool, ts: float) -> None:
        """Record one config load: counter, success flag and timestamp together.

        Kept in one call so the three can never disagree, which the
        HealerConfigReloadFailed alert relies on.
        """
        self.config_reloads.labels(result="success" if ok else "failure").inc()
        self.last_reload_success.set(1 if ok else 0)
        self.last_reload_timestamp.set(ts)

    def render(self) -> bytes:
        """The exposition text, as served on /metrics."""
        return bytes(generate_latest(self.registry))


@dataclass
class MetricsServer:
    """A running /metrics endpoint; ``port`` is the bound one (useful with 0)."""

    runner: web.AppRunner
    host: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()
        log.info("metrics_stopped", host=self.host, port=self.port)


async def serve(metrics: Metrics, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> MetricsServer:
    """Start serving ``GET /metrics`` on the running loop and return at once.

    Port 0 picks a free port (tests); the chosen one is ``server.port``.
    """

    async def handle(_request: web.Request) -> web.Response:
        body = await asyncio.to_thread(metrics.render)  # the state gauges query the store
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    # No access log: a scrape every 15 s would drown healer's own log.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            bound = int(addr[1])
            break
    log.info("metrics_listening", host=host, port=bound)
    return MetricsServer(runner=runner, host=host, port=bound)


async def measure_loop_lag(metrics: Metrics, interval: float = 1.0, *, iterations: int | None = None) -> None:
    """Probe how late the event loop runs callbacks; runs until cancelled.

    Sleeps ``interval`` and records how much longer than that it actually
    took. A blocking call on the loop (a sync action not moved to a worker
    thread, a huge regex) shows up here long before the systemd watchdog
    fires. ``iterations`` bounds the loop for tests.
    """
    loop = asyncio.get_running_loop()
    done = 0
    while iterations is None or done < iterations:
        start = loop.time()
        await asyncio.sleep(interval)
        metrics.loop_lag.set(max(0.0, loop.time() - start - interval))
        done += 1
