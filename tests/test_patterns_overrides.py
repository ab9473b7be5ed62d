"""Issue 12 §6: own pattern files add to the bundled set, override a bundled pattern only when marked, disable by id.

Real config files and pattern files, loaded the way the daemon loads them, and
`healer check` run as a user runs it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from healer.app.ruleset import load_ruleset
from healer.core.errors import ConfigError
from healer.core.paths import bundled_patterns_dir
from healer.rules.patterns import load_patterns

BUNDLED_IDS = [p.id for p in load_patterns([bundled_patterns_dir()]).patterns]
REDIS = bundled_patterns_dir() / "redis.yaml"

MINE = """patterns:
  - id: my-app-boom
    regex: 'BOOM (?P<what>[a-z]+)'
    examples: ['BOOM x']
"""
# The bundled Redis pattern, widened to any host: the operator's own Redis is not on localhost.
REDIS_ANY_HOST = """patterns:
  - id: redis-connection-refused
    {marker}
    regex: 'Error 111 connecting to (?P<host>[a-z0-9.-]+):(?P<port>6379)\\. Connection refused'
    examples: ['redis.exceptions.ConnectionError: Error 111 connecting to cache.internal:6379. Connection refused.']
"""


def config(tmp_path: Path, body: str, **files: str) -> Path:
    own = tmp_path / "patterns.d"
    own.mkdir(exist_ok=True)
    for name, text in files.items():
        (own / name).write_text(text)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\n{body}")
    return cfg


def check(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healer.cli", "check", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def ids(cfg: Path) -> list[str]:
    return [p.id for p in load_ruleset(cfg, environ={}).patterns]


def test_own_directory_adds_to_the_bundled_set_and_check_says_where_each_comes_from(tmp_path: Path) -> None:
    cfg = config(tmp_path, "patterns_dirs: [bundled, ./patterns.d]\n", **{"mine.yaml": MINE})
    assert ids(cfg) == [*BUNDLED_IDS, "my-app-boom"]
    r = check(cfg)
    assert r.returncode == 0, r.stderr
    n = len(BUNDLED_IDS)
    assert f"patterns in effect: {n + 1}\n" in r.stdout
    assert f"  bundled: {n} from " in r.stdout and str(bundled_patterns_dir()) in r.stdout
    assert f"  own: 1 from {tmp_path / 'patterns.d' / 'mine.yaml'} (1)\n" in r.stdout


def test_no_patterns_dirs_is_the_bundled_set_and_leaving_bundled_out_drops_it(tmp_path: Path) -> None:
    assert ids(config(tmp_path, "")) == BUNDLED_IDS
    cfg = config(tmp_path, "patterns_dirs: [./patterns.d]\n", **{"mine.yaml": MINE})
    assert ids(cfg) == ["my-app-boom"]
    r = check(cfg)
    assert r.returncode == 0, r.stderr
    assert "  bundled: not loaded (patterns_dirs leaves out 'bundled')\n" in r.stdout


def test_marked_override_replaces_the_bundled_pattern_in_its_place(tmp_path: Path) -> None:
    cfg = config(tmp_path, "patterns_dirs: [bundled, ./patterns.d]\n",
                 **{"redis.yaml": REDIS_ANY_HOST.format(marker="override: true")})  # fmt: skip
    rules = load_ruleset(cfg, environ={})
    assert rules.pattern_errors == ()
    assert [p.id for p in rules.patterns] == BUNDLED_IDS
    mine = next(p for p in rules.patterns if p.id == "redis-connection-refused")
    assert mine.file == str(tmp_path / "patterns.d" / "redis.yaml")
    assert mine.search("Error 111 connecting to cache.internal:6379. Connection refused") is not None
    r = check(cfg)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if "overridden:" in x)
    assert line == (
        f"  overridden: redis-connection-refused (bundled redis.yaml:{_line_of('redis-connection-refused')}) "
        f"by {tmp_path / 'patterns.d' / 'redis.yaml'}:2"
    )


def _line_of(pid: str) -> int:
    return next(i for i, text in enumerate(REDIS.read_text().splitlines(), 1) if text.strip() == f"- id: {pid}")


@pytest.mark.parametrize("order", ["[./patterns.d, bundled]", "[bundled, ./patterns.d]"])
def test_unmarked_duplicate_of_a_bundled_id_is_an_error_naming_both_files_and_the_bundled_one_stays(
    tmp_path: Path, order: str
) -> None:
    # "0-" sorts before every bundled file name, and the own directory may even come first in the list.
    cfg = config(tmp_path, f"patterns_dirs: {order}\n", **{"0-redis.yaml": REDIS_ANY_HOST.format(marker="")})
    rules = load_ruleset(cfg, environ={})
    kept = next(p for p in rules.patterns if p.id == "redis-connection-refused")
    assert kept.file == str(REDIS)
    r = check(cfg)
    assert r.returncode == 2
    own = tmp_path / "patterns.d" / "0-redis.yaml"
    assert (
        f"pattern error: {own}:2 [redis-connection-refused]: id 'redis-connection-refused' is a bundled pattern"
        f" ({REDIS}:{_line_of('redis-connection-refused')}); add 'override: true' to replace it" in r.stderr
    ), r.stderr
    assert "overridden:" not in r.stdout


def test_same_id_in_two_own_files_loads_neither_and_names_both(tmp_path: Path) -> None:
    cfg = config(tmp_path, "patterns_dirs: [bundled, ./patterns.d]\n", **{"a.yaml": MINE, "b.yaml": MINE})
    rules = load_ruleset(cfg, environ={})
    assert "my-app-boom" not in [p.id for p in rules.patterns]
    a, b = tmp_path / "patterns.d" / "a.yaml", tmp_path / "patterns.d" / "b.yaml"
    assert [str(e) for e in rules.pattern_errors] == [
        f"{b}:2 [my-app-boom]: id 'my-app-boom' is defined in {a}:2 and {b}:2; neither is loaded; keep one"
    ]
    # Two overrides of one bundled pattern: neither wins, the bundled one stays.
    marked = REDIS_ANY_HOST.format(marker="override: true")
    cfg = config(tmp_path, "patterns_dirs: [bundled, ./patterns.d]\n", **{"a.yaml": marked, "b.yaml": marked})
    rules = load_ruleset(cfg, environ={})
    assert next(p for p in rules.patterns if p.id == "redis-connection-refused").file == str(REDIS)
    assert "the bundled one" in str(rules.pattern_errors[0]) and rules.overridden == ()


def test_override_of_an_id_the_bundled_set_lacks_is_an_error_unless_bundled_is_left_out(tmp_path: Path) -> None:
    typo = REDIS_ANY_HOST.format(marker="override: true").replace("redis-connection-refused", "redis-conection-refused")
    cfg = config(tmp_path, "patterns_dirs: [bundled, ./patterns.d]\n", **{"redis.yaml": typo})
    rules = load_ruleset(cfg, environ={})
    assert "redis-conection-refused" not in [p.id for p in rules.patterns]
    assert "the bundled set has no pattern 'redis-conection-refused'; fix the id" in str(rules.pattern_errors[0])
    cfg = config(tmp_path, "patterns_dirs: [./patterns.d]\n")
    assert ids(cfg) == ["redis-conection-refused"]


def test_disabled_ids_are_taken_out_and_an_unknown_id_names_the_key(tmp_path: Path) -> None:
    cfg = config(tmp_path, "patterns_disabled: [python-traceback]\n")
    assert ids(cfg) == [i for i in BUNDLED_IDS if i != "python-traceback"]
    r = check(cfg)
    assert r.returncode == 0, r.stderr
    line = next(i for i, t in enumerate((bundled_patterns_dir() / "traceback.yaml").read_text().splitlines(), 1)
                if "id: python-traceback" in t)  # fmt: skip
    assert f"  disabled: python-traceback (bundled traceback.yaml:{line})\n" in r.stdout
    cfg = config(tmp_path, "patterns_disabled: [python-traceback, python-tracebak]\n")
    r = check(cfg)
    assert r.returncode == 2
    assert (
        f"pattern error: {cfg}: patterns_disabled[1]: 'python-tracebak' is not the id of any loaded pattern" in r.stderr
    ), r.stderr
    # An override can be disabled like any pattern in effect: then neither definition is in force.
    cfg = config(tmp_path, "patterns_dirs: [bundled, ./patterns.d]\npatterns_disabled: [redis-connection-refused]\n",
                 **{"redis.yaml": REDIS_ANY_HOST.format(marker="override: true")})  # fmt: skip
    rules = load_ruleset(cfg, environ={})
    assert "redis-connection-refused" not in [p.id for p in rules.patterns] and rules.pattern_errors == ()
    assert [(d.id, d.bundled) for d in rules.disabled] == [("redis-connection-refused", False)]


def test_bad_override_and_patterns_dirs_values_are_errors_naming_the_key(tmp_path: Path) -> None:
    cfg = config(tmp_path, "patterns_dirs: [bundled, ./patterns.d]\n",
                 **{"redis.yaml": REDIS_ANY_HOST.format(marker="override: yes please")})  # fmt: skip
    errors = [str(e) for e in load_ruleset(cfg, environ={}).pattern_errors]
    assert errors == [f"{tmp_path / 'patterns.d' / 'redis.yaml'}:2 [redis-connection-refused]: "
                      "'override' must be true or false"]  # fmt: skip
    cfg = config(tmp_path, "patterns_dirs: [bundled, ./patterns.d, bundled]\n")
    with pytest.raises(ConfigError, match=r"patterns_dirs: '.*' is listed twice \(entries 1 and 3\)"):
        load_ruleset(cfg, environ={})
    # A directory really called "bundled" is written as a path.
    (tmp_path / "bundled").mkdir()
    (tmp_path / "bundled" / "mine.yaml").write_text(MINE)
    assert ids(config(tmp_path, "patterns_dirs: [./bundled]\n")) == ["my-app-boom"]
