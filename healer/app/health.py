"""Host health from psutil: the same facts for ``healer health`` and the bot.

psutil calls block briefly (cpu_percent samples), so callers on the event
loop run ``collect`` and :meth:`HealthWatch.check` in a thread.

:class:`HealthWatch` is the periodic check: the service schedules it whether
or not Telegram is configured, and it speaks only when the set of crossed
thresholds changes, so a full disk is one message, not one per interval.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from healer.app.text import span
from healer.core.enums import Severity
from healer.core.notices import Notice, NoticeKind
from healer.settings.schema import HealthSettings


@dataclass(frozen=True)
class DiskUse:
    mount: str
    percent: float
    free_bytes: int
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class ServiceState:
    name: str
    up: bool
    detail: str


@dataclass(frozen=True)
class HostHealth:
    disks: tuple[DiskUse, ...]
    memory_percent: float
    swap_percent: float
    load: tuple[float, float, float]
    cpu_percent: float
    cpus: int
    services: tuple[ServiceState, ...]
    warnings: tuple[str, ...]


def _service_state(name: str) -> ServiceState:
    """A configured service is up if a process with that name (or cmdline word) runs."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            pname = proc.info["name"] or ""
            cmd = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if pname == name or any(os.path.basename(c) == name for c in cmd[:2]):
            return ServiceState(name, True, f"pid {proc.pid}")
    return ServiceState(name, False, "no such process")


def collect(settings: HealthSettings, cpu_interval: float = 0.2) -> HostHealth:
    disks = []
    warnings = []
    for mount in settings.mounts:
        try:
            du = psutil.disk_usage(mount)
            ok = du.percent < settings.disk_threshold
            disks.append(DiskUse(mount, du.percent, du.free, ok))
            if not ok:
                warnings.append(f"disk {mount} at {du.percent:.0f}% (threshold {settings.disk_threshold:.0f}%)")
        except OSError as exc:
            disks.append(DiskUse(mount, 0.0, 0, False, exc.strerror or str(exc)))
            warnings.append(f"disk {mount}: {exc.strerror or exc}")
    mem = psutil.virtual_memory()
    swap = psutil.swap_memory()
    if mem.percent >= settings.memory_threshold:
        warnings.append(f"memory at {mem.percent:.0f}% (threshold {settings.memory_threshold:.0f}%)")
    services = tuple(_service_state(n) for n in settings.services)
    warnings.extend(f"service {s.name} is down" for s in services if not s.up)
    return HostHealth(
        disks=tuple(disks),
        memory_percent=mem.percent,
        swap_percent=swap.percent,
        load=os.getloadavg(),
        cpu_percent=psutil.cpu_percent(interval=cpu_interval),
        cpus=psutil.cpu_count() or 1,
        services=services,
        warnings=tuple(warnings),
    )


Probe = Callable[[HealthSettings], HostHealth]


class HealthWatch:
    """Says "Host health: ..." when a threshold is crossed and "back within thresholds" when it clears.

    ``settings`` is read at every check (a reload changes thresholds);
    ``probe`` is :func:`collect` in service and a fixed answer in tests.
    """

    def __init__(self, settings: Callable[[], HealthSettings], probe: Probe = collect) -> None:
        self._settings = settings
        self._probe = probe
        self._warnings: tuple[str, ...] = ()
        self._since = 0.0

    def check(self, now: float) -> Notice | None:
        warnings = self._probe(self._settings()).warnings
        if warnings == self._warnings:
            return None
        previous, began = self._warnings, self._since
        self._warnings = warnings
        if warnings and not previous:
            self._since = now  # the trouble began; a change in what is wrong does not restart it
        if warnings:
            return Notice(NoticeKind.HEALTH, Severity.HIGH, "Host health: " + "; ".join(warnings))
        lasted = span(now - began)
        return Notice(
            NoticeKind.HEALTH,
            Severity.LOW,
            f"Host health back within thresholds after {lasted} (was: " + "; ".join(previous) + ")",
        )
