"""Shared set-up for the atheris targets: make the checkout importable, find seeds."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def seed_args(argv: list[str], *seed_dirs: Path) -> list[str]:
    """Unless the caller named corpus directories, use a fresh temp dir for new inputs
    (libFuzzer writes to the first directory) and read the bundled seeds after it."""
    if any(not a.startswith("-") for a in argv[1:]):
        return argv
    work = tempfile.mkdtemp(prefix="healer-fuzz-")
    return [argv[0], work, *(str(d) for d in seed_dirs if d.is_dir()), *argv[1:]]
