"""Pattern files: each validated alone, errors with file and line, bundled examples pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from healer.app.ruleset import load_pattern_dirs, typed_settings
from healer.core.paths import bundled_patterns_dir
from healer.rules.patterns import load_file
from healer.rules.samples import check_examples
from healer.settings.load import load_settings

ROOT = Path(__file__).resolve().parent.parent

GOOD = """patterns:
  - id: good
    regex: 'BOOM (?P<what>[a-z]+)'
    remediation: [{action: command, params: {command: ok}}]
    examples: ['BOOM x']
"""


def _bundled():
    settings = typed_settings(load_settings(ROOT / "config.example.yaml", environ={}, dotenv=False))
    return load_pattern_dirs([bundled_patterns_dir()], settings.actions)


def test_bundled_patterns_load_and_every_example_passes() -> None:
    res = _bundled()
    assert res.errors == ()
    assert len(res.patterns) >= 20
    failures = check_examples(res.patterns)
    assert failures == [], [(f.pattern.id, f.problem, f.line) for f in failures]


def test_bundled_patterns_cover_every_family() -> None:
    ids = " ".join(p.id for p in _bundled().patterns)
    for family in ("rate-limit", "missing-module", "git", "config", "attribute", "type", "timeout",
                   "redis", "postgres", "disk", "traceback"):  # fmt: skip
        assert family in ids, family


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("patterns:\n  - id: a\n    regex: 'x('\n    examples: [x]\n", 2, "not a valid RE2 regex"),
        ("patterns:\n  - id: a\n    regex: '(?=x)y'\n    examples: [x]\n", 2, "lookahead"),
        ("patterns:\n  - id: a\n    regex: '(a)\\1'\n    examples: [x]\n", 2, "backreferences"),
        (
            "patterns:\n  - id: ok\n    regex: x\n  - id: b\n    regex: x\n    remediation: [{action: nuke}]\n",
            4,
            "unknown action 'nuke'",
        ),
        (
            "patterns:\n  - id: a\n    regex: 'x (?P<m>y)'\n"
            "    remediation: [{action: pip_install, params: {module: '{mod}'}}]\n",
            2,
            "no such named group",
        ),
        ("patterns:\n  - id: a\n    regex: x\n    severity: urgent\n", 2, "severity"),
        ("patterns:\n  - id: a\n    regex: x\n    approval: sometimes\n", 2, "approval"),
        ("patterns:\n  - id: a\n    regxe: x\n", 2, "unknown key 'regxe'"),
        ("patterns: [\n", 2, "invalid YAML"),
        ("a: &x [1]\nb: *x\n", 2, "aliases"),
        ("just text\n", 1, "patterns"),
        ("actions:\n  command: {commands: {x: {argv: [id]}}}\npatterns:\n  - id: a\n    regex: x\n", 1, "'actions'"),
    ],
)
def test_bad_file_reported_with_line_and_others_still_load(tmp_path: Path, body: str, line: int, words: str) -> None:
    (tmp_path / "a_bad.yaml").write_text(body)
    (tmp_path / "b_good.yaml").write_text(GOOD)
    res = load_pattern_dirs([tmp_path])
    assert [p.id for p in res.patterns] == ["good"]
    assert len(res.errors) == 1
    err = str(res.errors[0])
    assert f"a_bad.yaml:{line}" in err, err
    assert words in err, err


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    """Neither wins: which would depend on how the file names sort (more in test_patterns_overrides)."""
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    res = load_pattern_dirs([tmp_path])
    assert res.patterns == () and "is defined in" in str(res.errors[0]), res.errors


def test_examples_and_counter_examples_are_checked(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        "patterns:\n  - id: a\n    regex: 'No module named (?P<m>[a-z]+)'\n    ignore: ['DEBUG']\n"
        "    examples: [{line: 'No module named foo', groups: {m: bar}}, 'nothing here']\n"
        "    counter_examples: ['No module named baz', 'DEBUG No module named foo']\n"
    )
    failures = check_examples(load_file(p))
    problems = sorted(f.problem for f in failures)
    assert problems == ["counter-example matches", "example does not match", "group 'm' is 'foo', expected 'bar'"]


def test_regex_is_linear_on_hostile_line() -> None:
    """A classic catastrophic-backtracking shape is instant under RE2."""
    import time

    from healer.rules.patterns import build_pattern

    p = build_pattern({"id": "bomb", "regex": "(a+)+$", "examples": ["a"]}, "x", 1, None)
    line = "a" * 1_000_000 + "!"
    t = time.perf_counter()
    assert p.search(line) is None
    assert time.perf_counter() - t < 1.0


PROBED = {"restart", "pip_install", "git_sync", "disk_cleanup", "restore_file"}


def test_bundled_patterns_confirm_wherever_their_fix_has_a_probe() -> None:
    """A probe replaces counting lines: one failed request to a stopped Redis is enough."""
    pats = _bundled().patterns
    probed = {p.id for p in pats if p.steps and p.steps[0].action in PROBED}
    assert {p.id for p in pats if p.confirm} == probed
    assert {"redis-connection-refused", "db-postgres-connection-refused", "missing-module", "git-not-fast-forward",
            "disk-no-space-left", "config-env-file-missing"} <= probed  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("    confirm: 'yes'\n", "'confirm' must be true or false, got 'yes'"),
        ("    confirm: 1\n", "'confirm' must be true or false, got 1"),
        ("    confirm: true\n    confirm_interval: 0\n", "'confirm_interval' must be more than 0"),
        ("    confirm: true\n    confirm_interval: soon\n", "'confirm_interval'"),
    ],
)
def test_a_bad_confirm_names_the_file_the_pattern_and_the_key(tmp_path: Path, extra: str, words: str) -> None:
    (tmp_path / "a_bad.yaml").write_text(GOOD.replace("  - id: good\n", "  - id: probed\n") + extra)
    res = load_pattern_dirs([tmp_path])
    assert res.patterns == ()
    [err] = res.errors
    assert str(err).startswith(f"{tmp_path / 'a_bad.yaml'}:2 [probed]: "), str(err)
    assert words in str(err), str(err)


def test_confirm_needs_a_fix_to_probe(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("patterns:\n  - id: quiet\n    regex: x\n    confirm: true\n")
    [err] = load_pattern_dirs([tmp_path]).errors
    assert "[quiet]: 'confirm: true' needs a remediation" in str(err)
