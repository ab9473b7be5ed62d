"""Load config plus patterns as one unit, so a reload swaps both or neither."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from healer.core.errors import PatternError
from healer.rules.patterns import Pattern, load_patterns
from healer.settings.config import Settings, load_settings


@dataclass(frozen=True)
class Ruleset:
    settings: Settings
    patterns: tuple[Pattern, ...]
    pattern_errors: tuple[PatternError, ...]
    pattern_files: tuple[str, ...]


def load_ruleset(config_path: Path) -> Ruleset:
    """Raises ConfigError for a bad config; bad pattern files are reported, not fatal."""
    settings = load_settings(config_path)
    res = load_patterns(settings.patterns_dirs, settings.actions)
    return Ruleset(settings, res.patterns, res.errors, res.files)
