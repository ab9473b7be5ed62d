"""The two checks ``healer setup`` makes before it writes: its ``--fallback`` specs, and the merged config.

Kept beside ``app.setup`` (which inspects the app and writes the block) so the
command itself is only prompts and printing. The merged config is loaded
from a probe file beside the real one before the real one is touched: a block
that would not load is never written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from healer.app import setup
from healer.app.ruleset import load_ruleset
from healer.core.errors import HealerError


def parse_fallbacks(specs: Sequence[str]) -> dict[str, str]:
    """``PROVIDER=MODEL`` specs; ValueError naming the bad one."""
    out: dict[str, str] = {}
    for spec in specs:
        provider, sep, model = spec.partition("=")
        if not sep or not provider or not model:
            raise ValueError(f"--fallback {spec!r}: write PROVIDER=MODEL, e.g. openai=gpt-4o-mini")
        out[provider.strip().lower()] = model.strip()
    return out


def merged_problem(path: Path, found: setup.Found) -> HealerError | None:
    """Why the config with ``found``'s block merged in would not load (None: it would)."""
    staged: dict[Path, str] = {}
    setup.write_app(path, found, lambda p, text: staged.__setitem__(p, text))
    probe = path.with_name(f".{path.name}.setup-check")
    try:
        probe.write_text(staged[path])
        load_ruleset(probe, environ={})
    except HealerError as exc:
        return exc
    finally:
        probe.unlink(missing_ok=True)
    return None
