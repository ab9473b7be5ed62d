"""The periodic host health check speaks only when the crossed thresholds change; no sleeps, no psutil."""

from __future__ import annotations

from healer.app.health import HealthWatch, HostHealth, collect
from healer.core.enums import Severity
from healer.core.notices import NoticeKind
from healer.settings.schema import HealthSettings


class Host:
    """A host whose warnings the test sets; everything else is a fixed reading."""

    def __init__(self) -> None:
        self.warnings: tuple[str, ...] = ()
        self.seen: list[HealthSettings] = []

    def probe(self, settings: HealthSettings) -> HostHealth:
        self.seen.append(settings)
        return HostHealth((), 10.0, 0.0, (0.1, 0.1, 0.1), 1.0, 2, (), self.warnings)


def test_speaks_on_crossing_stays_quiet_then_says_when_it_clears() -> None:
    host = Host()
    watch = HealthWatch(HealthSettings, host.probe)
    assert watch.check(1000.0) is None  # healthy from the start: nothing to say
    host.warnings = ("disk / at 95% (threshold 90%)",)
    first = watch.check(1060.0)
    assert first is not None and first.kind is NoticeKind.HEALTH and first.severity is Severity.HIGH
    assert first.text == "Host health: disk / at 95% (threshold 90%)"
    assert watch.check(1120.0) is None and watch.check(1180.0) is None  # same warnings: silence
    host.warnings = ("disk / at 95% (threshold 90%)", "memory at 97% (threshold 90%)")
    worse = watch.check(1240.0)
    assert worse is not None and worse.text.endswith("; memory at 97% (threshold 90%)")
    host.warnings = ()
    cleared = watch.check(1540.0)
    assert cleared is not None and cleared.severity is Severity.LOW
    assert cleared.text == (
        "Host health back within thresholds after 8m (was: disk / at 95% (threshold 90%); "
        "memory at 97% (threshold 90%))"
    )
    assert watch.check(1600.0) is None


def test_reads_the_settings_in_force_at_each_check() -> None:
    host = Host()
    current = [HealthSettings(disk_threshold=90.0)]
    watch = HealthWatch(lambda: current[0], host.probe)
    watch.check(0.0)
    current[0] = HealthSettings(disk_threshold=50.0)  # a reload
    watch.check(60.0)
    assert [s.disk_threshold for s in host.seen] == [90.0, 50.0]


def test_real_probe_crosses_a_threshold_every_disk_is_over() -> None:
    watch = HealthWatch(lambda: HealthSettings(mounts=("/",), disk_threshold=0.01))
    notice = watch.check(0.0)
    assert notice is not None and notice.text.startswith("Host health: disk / at")
    assert collect(HealthSettings()).cpus >= 1
