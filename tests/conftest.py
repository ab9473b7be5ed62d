"""Options for the whole test suite.

``--long`` (or ``HEALER_TORTURE_LONG=1``) runs the long torture modes (100 kills
instead of 10). pytest only honours ``pytest_addoption`` in the rootdir's or
the initial test directory's conftest, so it lives here rather than in
``tests/torture/``: ``pytest --long`` and ``pytest tests/torture --long`` both work.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False, help="run the long torture modes (100 kills)")
