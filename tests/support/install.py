"""install.sh into a staging root: a snapshot of the repo with its wheel, and one installer run.

pip installs a wheel built once from a snapshot of the repo with ``--no-deps``:
the point is the installer's own logic, and resolving healer's full dependency
tree from PyPI would take minutes and need the network. The snapshot also
shields the tests from concurrent edits.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def snapshot_with_wheel(src: Path, wheels: Path) -> tuple[Path, Path]:
    """A snapshot of the repo in ``src``, plus a wheel of it in ``wheels``."""
    ignore = shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".venv", ".*cache")
    for item in ["pyproject.toml", "healer", "patterns", "systemd"]:
        if (REPO / item).is_dir():
            shutil.copytree(REPO / item, src / item, ignore=ignore)
        else:
            shutil.copy2(REPO / item, src / item)
    for optional in ["config.example.yaml", ".env.example", "README.md"]:
        if (REPO / optional).exists():
            shutil.copy2(REPO / optional, src / optional)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("healer-*.whl")
    return src, wheel


def run_install(src: Path, wheel: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        "bash",
        str(src / "systemd" / "install.sh"),
        "--source", str(src),
        "--root", str(root),
        "--python", sys.executable,
        "--package", str(wheel),
        "--pip-args", "--no-deps --no-index",
        *extra,
    ]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res
