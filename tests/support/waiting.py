"""Waiting for something a real process or socket does, with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(pred: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Poll ``pred`` on the loop until true; after ``timeout`` fail with ``what()`` (the state seen)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; have {what()}")
        await asyncio.sleep(0.05)


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``pred`` until true (True) or ``timeout`` seconds pass (False); for threads and subprocesses."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def wait_for(pred: Callable[[], bool], timeout: float, what: Callable[[], str], interval: float = 0.2) -> None:
    """``eventually`` for blocking code: poll ``pred`` until true, else fail with ``what()``."""
    if not wait_until(pred, timeout, interval):
        raise AssertionError(f"timed out after {timeout:g}s; have {what()}")
