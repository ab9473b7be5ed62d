"""Options for the torture tests.

``--long`` (or ``HEALER_TORTURE_LONG=1``) runs the long mode: 100 kills instead
of 10.  pytest only reads ``pytest_addoption`` from conftest files it loads at
start-up, so pass the directory explicitly: ``pytest tests/torture --long``.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False, help="run the long torture modes (100 kills)")


@pytest.fixture
def long_mode(request: pytest.FixtureRequest) -> bool:
    try:
        opt = bool(request.config.getoption("--long"))
    except ValueError:
        opt = False
    return opt or os.environ.get("HEALER_TORTURE_LONG", "") not in ("", "0")
