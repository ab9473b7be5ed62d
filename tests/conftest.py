"""Options for the whole test suite.

``--long`` (or ``HEALER_TORTURE_LONG=1``) runs the long torture modes (100 kills
instead of 10). pytest only honours ``pytest_addoption`` in the rootdir's or
the initial test directory's conftest, so it lives here rather than in
``tests/torture/``: ``pytest --long`` and ``pytest tests/torture --long`` both work.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gitrig import Repos, make_repos
from support.install import snapshot_with_wheel
from support.pip import build_wheelhouse, make_venv
from support.supervisor import SUPERVISORD, Supervisor, running_supervisor
from support.tally import TALLIES

from healer.core.logsetup import configure as configure_logging


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False, help="run the long torture modes (100 kills)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, counts in TALLIES.items():
        if counts:
            terminalreporter.write_line(f"{name}: {dict(counts)}")


# Module scope: a test installs into the venv and undoes it; a fresh venv per module keeps a
# failure in one module from leaking an installed package into another.
@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheelhouse(tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv"))


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A snapshot of the repo and a wheel of it, for the install.sh tests (built once a run)."""
    return snapshot_with_wheel(tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repos:
    """A bare remote, a dev clone that pushes and the server checkout healer syncs (support/gitrig.py)."""
    # The action's git gets no GIT_* from us, only HOME: an empty home keeps the host's ~/.gitconfig out.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return make_repos(tmp_path)


@pytest.fixture(scope="module")
def supervisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    """A real supervisord with its two programs (``support.supervisor``), once per module."""
    if not SUPERVISORD.exists():
        pytest.skip(f"supervisord not installed next to {sys.executable}")
    with running_supervisor(tmp_path_factory.mktemp("sv")) as sv:
        yield sv


@pytest.fixture(autouse=True)
def _logging_follows_the_current_stderr() -> Iterator[None]:
    """A test that runs the CLI in-process configures logging on a stream pytest closes after it; reset it."""
    yield
    configure_logging("debug")  # every level, as structlog's defaults: capture_logs() keeps the filter
