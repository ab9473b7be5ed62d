"""The daemon's one scheduler: when jobs run is APScheduler's trigger arithmetic on the injected clock."""

from __future__ import annotations

import asyncio

import pytest

from healer.core.clock import FakeClock
from healer.service.scheduler import Scheduler

T0 = 1_800_000_000.0


async def _nothing() -> None:
    return None


def test_every_fires_one_period_after_registration_and_then_each_period() -> None:
    s = Scheduler(FakeClock(T0))
    s.every("settle", 30, _nothing)
    assert s.next_fire("settle", T0) == T0 + 30
    assert s.next_fire("settle", T0 + 30) == T0 + 60
    assert s.next_fire("settle", T0 + 45) == T0 + 60


def test_every_with_first_runs_early_then_keeps_its_period() -> None:
    s = Scheduler(FakeClock(T0))
    s.every("health", 300, _nothing, first=5)
    assert s.next_fire("health", T0) == T0 + 5
    assert s.next_fire("health", T0 + 5) == T0 + 305


def test_at_fires_once_at_its_time() -> None:
    s = Scheduler(FakeClock(T0))
    s.at("settle:7", T0 + 60.05, _nothing)
    assert s.next_fire("settle:7", T0) == pytest.approx(T0 + 60.05)
    assert s.next_fire("settle:7", T0 + 61) is None


def test_a_name_is_one_job_and_reregistering_replaces_it() -> None:
    """The bot's digest registered again after a reload must not run twice."""
    s = Scheduler(FakeClock(T0))
    s.every("digest", 600, _nothing)
    s.every("digest", 60, _nothing)
    assert s.names() == ["digest"]
    assert s.next_fire("digest", T0) == T0 + 60
    s.cancel("digest")
    assert s.names() == [] and s.next_fire("digest", T0) is None


def test_a_zero_interval_is_refused_with_the_job_name() -> None:
    with pytest.raises(ValueError, match="'digest'.*> 0"):
        Scheduler(FakeClock(T0)).every("digest", 0, _nothing)


async def test_a_failing_job_does_not_stop_the_others() -> None:
    # A fake clock far in the past: both date jobs are due the moment the scheduler starts.
    s = Scheduler(FakeClock(T0 - 10**8))
    ran = asyncio.Event()

    async def broken() -> None:
        raise RuntimeError("store is locked")

    async def fine() -> None:
        ran.set()

    s.at("broken", T0 - 10**8, broken)
    s.at("fine", T0 - 10**8, fine)
    s.start()
    try:
        await asyncio.wait_for(ran.wait(), 10)
    finally:
        s.shutdown()
