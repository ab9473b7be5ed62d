"""Where bundled files live, for a checkout and for a wheel install alike."""

from __future__ import annotations

import sys
from pathlib import Path

# The bundled pattern set's name in ``patterns_dirs``.
BUNDLED = "bundled"


def bundled_patterns_dir() -> Path:
    """The checkout's ``patterns/`` first (editable installs), then ``<prefix>/share``."""
    here = Path(__file__).resolve().parents[2] / "patterns"
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "healer" / "patterns"
