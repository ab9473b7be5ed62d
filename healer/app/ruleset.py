"""Load config plus patterns as one unit, so a reload swaps both or neither.

The composition root of the settings: the settings layer validates the file
with the action sections left raw, the action registry types those sections,
and the pattern loader checks each remediation step through the registry's
checker. No lower layer imports the actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from healer.core.errors import PatternError
from healer.remedy.apps import with_app_sections
from healer.remedy.registry import parse_action_sections, step_checker
from healer.rules.matcher import Matcher
from healer.rules.patterns import Pattern, load_patterns
from healer.rules.patternset import Disabled, LoadResult, Overridden
from healer.settings.load import load_settings
from healer.settings.schema import Settings


@dataclass(frozen=True)
class Ruleset:
    settings: Settings
    patterns: tuple[Pattern, ...]
    pattern_errors: tuple[PatternError, ...]
    pattern_files: tuple[str, ...]
    # What `healer check` reports of the set in effect (healer.rules.patternset).
    bundled_files: tuple[str, ...] = ()
    overridden: tuple[Overridden, ...] = ()
    disabled: tuple[Disabled, ...] = ()


def typed_settings(settings: Settings) -> Settings:
    """``settings`` with ``actions`` parsed by the registry (``settings.actions[name]`` typed)."""
    raw = with_app_sections(settings.actions, settings.apps, settings.source)
    return settings.model_copy(update={"actions": parse_action_sections(raw, settings.source)})


def load_pattern_dirs(
    dirs: Sequence[Path], actions: Mapping[str, Any] | None = None, settings: Settings | None = None
) -> LoadResult:
    """Pattern files with every remediation checked against the actions (and their settings, if given).

    With ``settings``, its ``patterns_disabled`` are taken out (and an unknown id is an error naming it).
    """
    if settings is None:
        return load_patterns(dirs, step_checker(actions))
    return load_patterns(
        dirs, step_checker(actions), disabled=settings.patterns_disabled, config=settings.source or "config"
    )


def load_ruleset(config_path: Path, environ: Mapping[str, str] | None = None) -> Ruleset:
    """Raises ConfigError for a bad config; bad pattern files are reported, not fatal."""
    settings = typed_settings(load_settings(config_path, environ))
    res = load_pattern_dirs(settings.patterns_dirs, settings.actions, settings)
    # Compile exactly what the daemon's engine compiles, so `healer check` and a reload refuse
    # a set that would otherwise crash the daemon at start (the old set stays in force).
    Matcher(res.patterns)
    return Ruleset(settings, res.patterns, res.errors, res.files, res.bundled_files, res.overridden, res.disabled)
