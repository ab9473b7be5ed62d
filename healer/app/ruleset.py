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
from healer.rules.patternset import Disabled, FileLoad, Kept, LoadResult, Overridden
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
    # Each pattern file's version in force (the next reload keeps it if the file turns bad), and those kept.
    loads: tuple[FileLoad, ...] = ()
    kept: tuple[Kept, ...] = ()


def typed_settings(settings: Settings) -> Settings:
    """``settings`` with ``actions`` parsed by the registry (``settings.actions[name]`` typed)."""
    raw = with_app_sections(settings.actions, settings.apps, settings.source)
    return settings.model_copy(update={"actions": parse_action_sections(raw, settings.source)})


def load_pattern_dirs(
    dirs: Sequence[Path],
    actions: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    last_good: Mapping[str, FileLoad] | None = None,
) -> LoadResult:
    """Pattern files with every remediation checked against the actions (and their settings, if given).

    With ``settings``, its ``patterns_disabled`` are taken out (and an unknown id is an error naming it).
    """
    if settings is None:
        return load_patterns(dirs, step_checker(actions))
    return load_patterns(
        dirs,
        step_checker(actions),
        disabled=settings.patterns_disabled,
        config=settings.source or "config",
        last_good=last_good,
    )


def load_ruleset(
    config_path: Path, environ: Mapping[str, str] | None = None, last_good: Ruleset | None = None
) -> Ruleset:
    """Raises ConfigError for a bad config; bad pattern files are reported, not fatal.

    ``last_good``: the ruleset in force (a live reload); a pattern file that fails to load
    keeps its version from there (``Ruleset.kept``), as the config itself would.
    """
    settings = typed_settings(load_settings(config_path, environ))
    good = {f.path: f for f in last_good.loads} if last_good is not None else None
    res = load_pattern_dirs(settings.patterns_dirs, settings.actions, settings, good)
    # Compile exactly what the daemon's engine compiles, so `healer check` and a reload refuse
    # a set that would otherwise crash the daemon at start (the old set stays in force).
    Matcher(res.patterns)
    return Ruleset(
        settings,
        res.patterns,
        res.errors,
        res.files,
        res.bundled_files,
        res.overridden,
        res.disabled,
        res.loads,
        res.kept,
    )
