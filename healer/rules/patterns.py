"""Load and validate pattern files.

Each file is validated on its own: a bad file (YAML error, bad regex, unknown
action, a placeholder naming a group the regex does not have) is reported with
its file and line and skipped, and the other files still load. Regexes are
RE2, so matching runs in linear time on any line, hostile or not; RE2 has no
backreferences or lookaround, and a pattern that needs them is refused here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from healer.core.enums import Approval, Family, PatternMode, Severity
from healer.core.errors import ParamError, PatternError
from healer.core.paths import bundled_patterns_dir
from healer.rules.fields import (
    Example,
    compile_re2,
    duration_key,
    examples_of,
    family_of,
    mode_of,
    str_key,
    strings_key,
)
from healer.rules.patternset import FileLoad, Kept, LoadResult, effective_set
from healer.settings.preconditions import CheckBase, parse_checks
from healer.settings.safeyaml import YamlProblem, item_lines, load_with_node, read_capped

# One remediation step's check, given by the caller (healer.remedy.registry.step_checker):
# raise ValueError or ParamError for an unknown action or bad params. The rules layer
# does not import the actions; without a checker only the step's shape is checked.
StepCheck = Callable[[str, Mapping[str, str]], None]

# Placeholders in pattern params: "{module}" takes the named group "module".
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Always available to templates, never taken from the log line.
BUILTIN_VARS = frozenset({"service", "pattern", "incident"})


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SOURCES = frozenset({"file", "journald", "sentry", "glitchtip", "alertmanager", "chat", "replay"})
GROUP_BY = frozenset({"match", "service", "host", "source"})
PATTERN_KEYS = frozenset(
    {
        "id",
        "description",
        "severity",
        "regex",
        "ignore",
        "sources",
        "services",
        "fields",
        "remediation",
        "threshold",
        "cooldown",
        "max_attempts",
        "approval",
        "examples",
        "counter_examples",
        "group_by",
        "enabled",
        "family",
        "supersedes",
        "override",
        "preconditions",
        "confirm",
        "confirm_interval",
        "mode",
    }
)
# Top-level keys of a pattern file besides ``patterns:``; ``default_mode: shadow`` makes a new file's
# patterns shadow unless one says ``mode: active``.
FILE_KEYS = frozenset({"patterns", "default_mode"})
DEFAULT_CONFIRM_INTERVAL = 60.0


@dataclass(frozen=True)
class Step:
    action: str
    params: Mapping[str, str]


@dataclass(frozen=True, eq=False)
class Pattern:
    id: str
    description: str
    severity: Severity
    regex: str
    compiled: Any = field(repr=False)
    ignore: tuple[Any, ...] = field(default=(), repr=False)
    ignore_src: tuple[str, ...] = ()
    sources: frozenset[str] | None = None
    services: frozenset[str] | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    threshold_count: int = 1
    threshold_window: float = 60.0
    cooldown: float = 300.0
    max_attempts: int = 3
    approval: Approval = Approval.AUTO
    examples: tuple[Example, ...] = ()
    counter_examples: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ("match",)
    file: str = ""
    line: int = 0
    family: Family = Family.UNKNOWN
    # Ids of less specific patterns that this one replaces when both match
    # the same line (the Matcher drops their hits), so one fault is one hit.
    supersedes: frozenset[str] = frozenset()
    # Replaces the bundled pattern of the same id (see healer.rules.patternset).
    override: bool = False
    # Checked on the host before this pattern's fix runs, after the config's (healer.settings.preconditions).
    preconditions: tuple[CheckBase, ...] = ()
    # Probe the first step's fault before acting (``Action.confirm``) instead of counting lines;
    # a refutation (or an "unknown") is held this long before the next line probes again.
    confirm: bool = False
    confirm_interval: float = DEFAULT_CONFIRM_INTERVAL
    # Shadow: matches and records what it would do, never acts, never pages at once. An operator's
    # ``healer patterns promote/demote`` (kept in the store) overrides this per id.
    mode: PatternMode = PatternMode.ACTIVE

    @property
    def fixable(self) -> bool:
        return bool(self.steps) and self.approval is not Approval.NEVER

    def search(self, text: str) -> dict[str, str] | None:
        """A match with ignores; named groups plus ``match`` (the matched text).

        In a multi-line event an ignore vetoes only the lines its match spans
        (a traceback's ``raise TimeoutError`` source line does not hide the
        ``TimeoutError: timed out`` line below it), and the search goes on
        with the next line, so one line behaves exactly as it always did.
        """
        if "\n" not in text:  # one line, nearly every hit: the per-line form, no span bookkeeping
            m = self.compiled.search(text)
            if m is None or any(ig.search(text) is not None for ig in self.ignore):
                return None
            return self._groups(m)
        pos = 0
        while True:
            m = self.compiled.search(text, pos)
            if m is None:
                return None
            if not self.ignore:
                break
            a = text.rfind("\n", 0, m.start()) + 1
            b = text.find("\n", m.end())
            span = text[a:] if b < 0 else text[a:b]
            if not any(ig.search(span) is not None for ig in self.ignore):
                break
            if b < 0:
                return None
            pos = b + 1
        return self._groups(m)

    @staticmethod
    def _groups(m: Any) -> dict[str, str]:
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        groups["match"] = m.group(0)
        return groups

    def selects(self, source: str, service: str, fields: Mapping[str, str]) -> bool:
        if self.sources is not None and source not in self.sources:
            return False
        if self.services is not None and service not in self.services:
            return False
        return all(fields.get(k) == v for k, v in self.fields.items())


def build_pattern(
    raw: Any,
    file: str,
    line: int,
    check_step: StepCheck | None = None,
    default_mode: PatternMode = PatternMode.ACTIVE,
) -> Pattern:
    """One pattern mapping -> Pattern. Raises ValueError/ParamError with a plain problem."""
    if not isinstance(raw, dict):
        raise ValueError("each pattern must be a mapping with at least id and regex")
    unknown = sorted(set(raw) - PATTERN_KEYS)
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}'; known keys: {', '.join(sorted(PATTERN_KEYS))}")
    pid = str_key(raw, "id")
    if not ID_RE.match(pid):
        raise ValueError(f"id {pid!r} must be lowercase letters, digits, '-', '_' or '.'")
    regex = str_key(raw, "regex")
    compiled = compile_re2(regex, "'regex'")
    group_names = set(compiled.groupindex)
    ignore_src = strings_key(raw.get("ignore"), "ignore")
    ignore = tuple(compile_re2(s, f"'ignore' entry {s!r}") for s in ignore_src)
    try:
        severity = Severity(raw.get("severity", "medium"))
    except ValueError:
        raise ValueError("'severity' must be one of critical, high, medium, low") from None
    try:
        approval = Approval(raw.get("approval", "auto"))
    except ValueError:
        raise ValueError("'approval' must be one of auto, ask, never") from None
    sources = strings_key(raw.get("sources"), "sources")
    bad = sorted(set(sources) - SOURCES)
    if bad:
        raise ValueError(f"'sources' has unknown source {bad[0]!r}; known: {', '.join(sorted(SOURCES))}")
    services = strings_key(raw.get("services"), "services")
    fields_raw = raw.get("fields") or {}
    if not isinstance(fields_raw, dict) or not all(isinstance(v, str) for v in fields_raw.values()):
        raise ValueError("'fields' must map field names to exact string values")
    group_by = strings_key(raw.get("group_by", ["match"]), "group_by")
    bad = sorted(set(group_by) - GROUP_BY - group_names)
    if bad:
        raise ValueError(f"'group_by' names {bad[0]!r}, which is neither a named group nor one of {sorted(GROUP_BY)}")
    steps = _steps(raw.get("remediation"), group_names, check_step)
    family = family_of(raw.get("family", Family.UNKNOWN.value))
    supersedes = strings_key(raw.get("supersedes"), "supersedes")
    bad = sorted(s for s in supersedes if not ID_RE.match(s) or s == pid)
    if bad:
        raise ValueError(f"'supersedes' entry {bad[0]!r} must be the id of another pattern")
    override = raw.get("override", False)
    if not isinstance(override, bool):
        raise ValueError("'override' must be true or false")
    confirm = raw.get("confirm", False)
    if not isinstance(confirm, bool):
        raise ValueError(f"'confirm' must be true or false, got {confirm!r}")
    if confirm and not steps:
        raise ValueError("'confirm: true' needs a remediation: the probe is its first step's")
    confirm_interval = duration_key(raw.get("confirm_interval", DEFAULT_CONFIRM_INTERVAL), "confirm_interval")
    if confirm_interval <= 0:
        raise ValueError("'confirm_interval' must be more than 0: a refutation is held that long, not probed per line")
    threshold = raw.get("threshold", 1)
    if isinstance(threshold, int) and not isinstance(threshold, bool):
        t_count, t_window = threshold, 60.0
    elif isinstance(threshold, dict):
        t_count = threshold.get("count", 1)
        t_window = duration_key(threshold.get("window", 60), "threshold.window")
    else:
        raise ValueError("'threshold' must be a count or {count: N, window: SECONDS}")
    if not isinstance(t_count, int) or isinstance(t_count, bool) or t_count < 1:
        raise ValueError("'threshold.count' must be a whole number >= 1")
    max_attempts = raw.get("max_attempts", 3)
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise ValueError("'max_attempts' must be a whole number >= 1")
    examples = examples_of(raw.get("examples"))
    return Pattern(
        id=pid,
        description=str(raw.get("description", "")),
        severity=severity,
        regex=regex,
        compiled=compiled,
        ignore=ignore,
        ignore_src=tuple(ignore_src),
        sources=frozenset(sources) if sources else None,
        services=frozenset(services) if services else None,
        fields={str(k): v for k, v in fields_raw.items()},
        steps=steps,
        threshold_count=t_count,
        threshold_window=t_window,
        cooldown=duration_key(raw.get("cooldown", 300), "cooldown"),
        max_attempts=max_attempts,
        approval=approval,
        examples=examples,
        counter_examples=tuple(strings_key(raw.get("counter_examples"), "counter_examples")),
        group_by=tuple(group_by),
        file=file,
        line=line,
        family=family,
        supersedes=frozenset(supersedes),
        override=override,
        preconditions=parse_checks(raw.get("preconditions")),
        confirm=confirm,
        confirm_interval=confirm_interval,
        mode=mode_of(raw["mode"], "mode") if "mode" in raw else default_mode,
    )


def _steps(raw: Any, group_names: set[str], check_step: StepCheck | None) -> tuple[Step, ...]:
    if raw is None:
        return ()
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise ValueError("'remediation' must be a list of {action: NAME, params: {...}}")
    steps = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("action"), str):
            raise ValueError(f"remediation[{i}] must be a mapping with an 'action' name")
        extra = set(item) - {"action", "params"}
        if extra:
            raise ValueError(f"remediation[{i}] has unknown key {sorted(extra)[0]!r}; use action and params")
        name = item["action"]
        params_raw = item.get("params") or {}
        if not isinstance(params_raw, dict):
            raise ValueError(f"remediation[{i}].params must be a mapping")
        params = {str(k): str(v) for k, v in params_raw.items()}
        for k, v in params.items():
            missing = placeholders(v) - group_names - BUILTIN_VARS
            if missing:
                raise ValueError(
                    f"remediation[{i}].params.{k} uses {{{sorted(missing)[0]}}}, but the regex has no "
                    f"such named group (groups: {sorted(group_names) or 'none'})"
                )
        if check_step is not None:
            try:
                check_step(name, params)
            except (ParamError, ValueError) as exc:
                raise ValueError(f"remediation[{i}]: {exc}") from None
        steps.append(Step(name, params))
    return tuple(steps)


def load_file(path: Path, check_step: StepCheck | None = None) -> list[Pattern]:
    """All patterns of one file, or PatternError for the whole file."""
    name = str(path)
    try:
        text = read_capped(path).decode("utf-8")
    except YamlProblem as exc:  # too large: refused before it is read
        raise PatternError(name, exc.problem) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternError(name, f"cannot read: {exc}") from None
    try:
        data, node = load_with_node(text)
    except YamlProblem as exc:
        raise PatternError(name, exc.problem, exc.line) from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("patterns"), list):
        raise PatternError(name, "expected a top-level 'patterns:' list", 1)
    stray = sorted(str(k) for k in data if k not in FILE_KEYS)
    if stray:
        # An 'actions:' section here would otherwise be ignored silently: allowlists live in the config.
        raise PatternError(
            name,
            f"unknown top-level key {stray[0]!r}; a pattern file holds only 'patterns:' and 'default_mode:'"
            " (actions go in the config)",
            1,
        )
    try:
        default_mode = mode_of(data.get("default_mode", PatternMode.ACTIVE.value), "default_mode")
    except ValueError as exc:
        raise PatternError(name, str(exc), 1) from None
    lines = item_lines(node, "patterns")
    out = []
    for i, raw in enumerate(data["patterns"]):
        line = lines[i] if i < len(lines) else None
        pid = raw.get("id", "") if isinstance(raw, dict) else ""
        if isinstance(raw, dict) and raw.get("enabled", True) is False:
            continue
        try:
            out.append(build_pattern(raw, name, line or 0, check_step, default_mode))
        except (ValueError, ParamError) as exc:
            raise PatternError(name, str(exc), line, str(pid)) from None
    return out


def pattern_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(sorted(p for p in d.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file()))
    return files


def _still_valid(load: FileLoad, check_step: StepCheck | None) -> bool:
    """A kept version's steps against the config as it is now: an allowlist removed since refuses it."""
    try:
        for p in load.patterns:
            for step in p.steps:
                if check_step is not None:
                    check_step(step.action, step.params)
    except (ParamError, ValueError):
        return False
    return True


def load_patterns(
    dirs: Sequence[Path],
    check_step: StepCheck | None = None,
    *,
    disabled: Sequence[str] = (),
    config: str = "config",
    last_good: Mapping[str, FileLoad] | None = None,
) -> LoadResult:
    """Every pattern file under ``dirs``, merged into the set in effect (see healer.rules.patternset).

    Files under the bundled directory are the bundled set, wherever it is listed. Pass the
    registry's ``step_checker`` to check remediations, and the config's ``patterns_disabled``.
    ``last_good`` (a live reload: each file's version in force until now): a file that fails
    to load keeps that version, as a bad config keeps the last good config; the error is
    still reported, and :attr:`LoadResult.kept` says which files it kept.
    """
    errors: list[PatternError] = []
    for d in dirs:
        if not d.exists():
            errors.append(PatternError(str(d), "patterns directory does not exist; fix patterns_dirs"))
    bundled_dir = bundled_patterns_dir().resolve()
    files = pattern_files(dirs)
    loads: list[FileLoad] = []
    kept: list[Kept] = []
    for path in files:
        try:
            loaded = load_file(path, check_step)
        except PatternError as exc:
            errors.append(exc)
            good = (last_good or {}).get(str(path))
            if good is not None and _still_valid(good, check_step):
                loads.append(good)
                kept.append(Kept(str(path), exc, len(good.patterns)))
            continue
        loads.append(FileLoad(str(path), tuple(loaded), path.resolve().parent == bundled_dir))
    # Bundled first wherever listed: which set a file belongs to decides, never the order of the list.
    loads.sort(key=lambda f: not f.bundled)
    res = effective_set(loads, disabled, config, errors, [str(f) for f in files])
    return replace(res, loads=tuple(loads), kept=tuple(kept))
