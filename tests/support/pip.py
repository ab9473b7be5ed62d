"""A local wheelhouse and a throwaway venv for the pip_install tests (no network)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def build_wheelhouse(src: Path, out: Path) -> Path:
    """Build ``healer-demo-pkg`` 1.0 from ``src`` into the wheelhouse ``out``."""
    pkg = src / "healer_demo_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("VALUE = 42\n")
    (pkg / "sub.py").write_text("X = 1\n")
    (src / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='healer-demo-pkg', version='1.0', packages=['healer_demo_pkg'])\n"
    )
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    argv += ["--disable-pip-version-check", "-q", "-w", str(out), str(src)]
    subprocess.run(argv, check=True, timeout=120)
    assert list(out.glob("healer_demo_pkg-1.0-*.whl"))
    return out


def make_venv(venv: Path) -> Path:
    """Create an empty venv and return its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"
