"""The pattern set in effect, as `healer check` prints it: where each pattern comes from, what was replaced or off."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from healer.app.ruleset import Ruleset
from healer.core.enums import PatternMode
from healer.core.paths import BUNDLED, bundled_patterns_dir


def pattern_set_lines(rules: Ruleset) -> list[str]:
    bundled = set(rules.bundled_files)
    per_file = Counter(p.file for p in rules.patterns)
    n_bundled = sum(n for f, n in per_file.items() if f in bundled)
    out = [f"patterns in effect: {len(rules.patterns)}"]
    if bundled:
        out.append(f"  bundled: {n_bundled} from {len(bundled)} files in {bundled_patterns_dir()}")
    else:
        out.append(f"  bundled: not loaded (patterns_dirs leaves out '{BUNDLED}')")
    own = [f"{f} ({n})" for f, n in per_file.items() if f not in bundled]
    if own:
        out.append(f"  own: {len(rules.patterns) - n_bundled} from " + ", ".join(own))
    for o in rules.overridden:
        out.append(f"  overridden: {o.id} (bundled {_short(o.bundled)}) by {o.by}")
    for d in rules.disabled:
        out.append(f"  disabled: {d.id} ({'bundled ' + _short(d.where) if d.bundled else d.where})")
    # As the files say; `healer patterns` shows the mode in force (an operator's promote/demote wins).
    shadow = [p.id for p in rules.patterns if p.mode is PatternMode.SHADOW]
    if shadow:
        out.append(f"  shadow (records, never acts; healer patterns): {', '.join(shadow)}")
    return out


def _short(where: str) -> str:
    """A bundled file:line without the install prefix every bundled file shares."""
    return Path(where).name
