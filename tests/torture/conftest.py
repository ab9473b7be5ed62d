"""Fixtures for the torture tests.

``--long`` is registered in ``tests/conftest.py`` (so it works from the repo
root too); ``HEALER_TORTURE_LONG=1`` does the same without the flag.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def long_mode(request: pytest.FixtureRequest) -> bool:
    try:
        opt = bool(request.config.getoption("--long"))
    except ValueError:
        opt = False
    return opt or os.environ.get("HEALER_TORTURE_LONG", "") not in ("", "0")
