"""The live-systemd tier: one container booted per test session, healer installed into it as the README says.

Skipped, with the reason, only when this host cannot run it (not root, no
debootstrap/systemd-nspawn, no network to the Debian mirror for the first
build). With ``CI=true`` a missing prerequisite fails instead: CI must never
pass by not running the tier.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.nspawn import Container, ensure_root, mirror_unreachable, missing_prerequisites, root_is_cached
from support.systemd_rig import SRC, WHEELS, Rig, snapshot_wheelhouse

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "build" / "systemd-ci"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"live systemd tier cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"live systemd tier: {reason}")


@pytest.fixture(scope="session")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    why = missing_prerequisites() or mirror_unreachable(root_is_cached(CACHE))
    if why:
        _unavailable(why)
    root = ensure_root(CACHE, CACHE / "debootstrap.log")
    src, wheels = snapshot_wheelhouse(tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheels"))
    box = Container(root, {src: SRC, wheels: WHEELS}, CACHE / "console.log")
    try:
        box.boot()
        inner = box.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()
        host = f"{sys.version_info[0]}.{sys.version_info[1]}"
        # The wheelhouse holds compiled wheels (re2, pydantic-core) for the host's Python.
        assert inner == host, f"container Python {inner} != host Python {host}: the wheelhouse would not install"
        yield box
    finally:
        box.poweroff()


@pytest.fixture(scope="session")
def rig(container: Container) -> Rig:
    """healer installed by install.sh as the README says, started by systemd; the install's output kept."""
    return Rig.install(container)
