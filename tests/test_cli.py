"""The CLI as a user runs it: real subprocesses, real files, exit codes and output."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support.daemon import TEST_PATTERNS, base_config, write_config

from healer.core.errors import StoreError
from healer.store.db import SCHEMA_VERSION, Store

ROOT = Path(__file__).resolve().parent.parent


def healer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healer.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)  # fmt: skip


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "test.yaml").write_text(yaml.safe_dump(TEST_PATTERNS))
    return write_config(tmp_path / "config.yaml", base_config(tmp_path))


def test_check_ok_and_errors(cfg: Path, tmp_path: Path) -> None:
    ok = healer("check", "-c", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert "2 patterns" in ok.stdout
    (tmp_path / "patterns" / "bad.yaml").write_text("patterns:\n  - id: x\n    regex: '('\n")
    bad = healer("check", "-c", str(cfg))
    assert bad.returncode == 2
    assert "bad.yaml:2 [x]" in bad.stderr
    cfg.write_text("kill_switch: 3\n")
    assert healer("check", "-c", str(cfg)).returncode == 2


def test_example_config_checks_clean() -> None:
    r = healer("check", "-c", str(ROOT / "config.example.yaml"))
    assert r.returncode == 0, r.stderr


def test_test_pattern_examples_and_log(tmp_path: Path) -> None:
    r = healer("test-pattern", str(ROOT / "patterns"))
    assert r.returncode == 0, r.stdout
    assert "0 failures" in r.stdout
    log = tmp_path / "app.log"
    log.write_text(
        "INFO all good\n"
        "ModuleNotFoundError: No module named 'yaml'\n"
        "OSError: [Errno 28] No space left on device\n"
        "DEBUG retry timeout set to 30s\n"
        "ModuleNotFoundError: No module named 'cv2'\n"
    )
    r = healer("test-pattern", str(ROOT / "patterns"), "--log", str(log))
    assert "Lines: 5" in r.stdout
    counts = {line.split()[1]: int(line.split()[0]) for line in r.stdout.splitlines() if line[:10].strip().isdigit()}
    assert counts["missing-module"] == 2
    assert sum(v for k, v in counts.items() if k.startswith("disk")) >= 1
    assert "| ModuleNotFoundError: No module named 'cv2'" in r.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("patterns:\n  - id: a\n    regex: 'x'\n    examples: ['y']\n")
    r = healer("test-pattern", str(broken))
    assert r.returncode == 1 and "example does not match" in r.stdout


def test_replay_json_is_a_dry_run(cfg: Path, tmp_path: Path) -> None:
    log = tmp_path / "old.log"
    log.write_text("".join(f"ERROR BOOM disk {i}\n" for i in range(50)) + "INFO fine\nERROR BOOM net\nLINE 7")
    r = healer("-c", str(cfg), "replay", str(log), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    summary = rows[-1]["summary"]
    assert summary["lines"] == 53 and summary["matches"] == 52 and summary["incidents"] == 3
    boom = {row["count"]: row for row in rows[:-1] if row["pattern"] == "boom"}
    assert boom[50]["reason"] == "dry_run" and "would run command(command=ok)" in boom[50]["would"]
    assert not (tmp_path / "state").exists(), "replay must not touch the daemon's store"


def test_history_errors_explain_on_empty_and_filled_store(cfg: Path, tmp_path: Path) -> None:
    r = healer("-c", str(cfg), "history")
    assert r.returncode == 0 and "0 total" in r.stdout
    healer("-c", str(cfg), "replay", str(cfg), "--state", str(tmp_path / "state"))
    log = tmp_path / "x.log"
    log.write_text("ERROR BOOM disk\n")
    healer("-c", str(cfg), "replay", str(log), "--state", str(tmp_path / "state"))
    r = healer("-c", str(cfg), "errors", "--since", "1h")
    assert "1 events, 1 incidents" in r.stdout and "boom" in r.stdout
    r = healer("-c", str(cfg), "explain", "1")
    assert "Incident #1" in r.stdout and "skip (dry_run)" in r.stdout
    missing = healer("-c", str(cfg), "explain", "99")
    assert "No incident #99" in missing.stdout and missing.returncode == 1


def test_health_prints_real_figures(cfg: Path) -> None:
    import psutil

    r = healer("-c", str(cfg), "health")
    assert r.returncode == 0, r.stderr
    assert "disk /:" in r.stdout and "memory" in r.stdout and "load" in r.stdout
    pct = psutil.disk_usage("/").percent
    shown = float(r.stdout.split("disk /: ")[1].split("%")[0])
    assert abs(shown - pct) < 2


def test_store_schema_version_and_pruning(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    s = Store(db)
    assert s.query("SELECT version FROM schema_version")[0][0] == SCHEMA_VERSION
    assert s.query("PRAGMA journal_mode")[0][0] == "wal"
    now = time.time()
    with s.tx() as c:
        for i in range(10):
            c.execute("INSERT INTO events (ts, source, service, origin, message, pattern_id, incident_id)"
                      " VALUES (?, 'file', 's', 'o', 'm', 'p', 1)", (now - 86400 * (10 - i),))  # fmt: skip
    assert s.prune(now, retention_days=5, max_events=3) == 7
    s.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer than this healer"):
        Store(db)


def _one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_bad_input_is_one_line_and_exit_2(cfg: Path, tmp_path: Path) -> None:
    _one_line_error(healer("-c", str(cfg), "errors", "--since", "banana"), "--since 'banana'", "duration")
    _one_line_error(healer("-c", str(cfg), "errors", "--since=-5m"), "--since '-5m'")
    _one_line_error(healer("-c", str(cfg), "replay", str(tmp_path / "nope.log")), "nope.log", "No such file")
    _one_line_error(healer("test-pattern", str(ROOT / "patterns"), "--log", str(tmp_path / "gone.log")), "gone.log")
    assert "Errors in the last 2d" in healer("-c", str(cfg), "errors", "--since", "2d").stdout


HOSTILE = (
    "ERROR BOOM disk \x1b]52;c;cm0gLXJmIH4=\x07 \x1b]8;;http://evil/\x07link\x1b]8;;\x07 "
    "\x1b]0;pwned title\x07 \x1b[2J\x1b[31mred \x9b31m c1 \u202eevil"
)


def test_log_text_reaches_the_terminal_escaped(cfg: Path, tmp_path: Path) -> None:
    """CSI, OSC 52 (clipboard), OSC 8 (links), title changes and C1 controls are shown, not obeyed."""
    log = tmp_path / "hostile.log"
    log.write_text(HOSTILE + "\n", encoding="utf-8")
    assert healer("-c", str(cfg), "replay", str(log), "--state", str(tmp_path / "state")).returncode == 0
    outputs = {
        "errors": healer("-c", str(cfg), "errors").stdout,
        "explain": healer("-c", str(cfg), "explain", "1").stdout,
        "test-pattern": healer("test-pattern", str(tmp_path / "patterns"), "--log", str(log)).stdout,
    }
    for name, out in outputs.items():
        assert "BOOM disk" in out, (name, out)
        assert not any(ch in out for ch in "\x1b\x07\x9b\u202e"), (name, out)
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in outputs["explain"]
    assert "\\x9b31m" in outputs["test-pattern"] and "\\u202eevil" in outputs["test-pattern"]


def test_status_says_switches_and_counts(cfg: Path, tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("ERROR BOOM disk\nERROR BOOM net\n")
    healer("-c", str(cfg), "replay", str(log), "--state", str(tmp_path / "state"))
    out = healer("-c", str(cfg), "status").stdout
    assert "Kill switch: off" in out and "Circuit breaker: closed" in out and "Dry run: off" in out
    assert "Patterns: 2; open incidents: 2; waiting for approval: 0; fixes running: 0" in out


def _bundled_examples_log(tmp_path: Path) -> tuple[Path, Path, set[str]]:
    from healer.rules.patterns import load_patterns

    res = load_patterns([ROOT / "patterns"], None)
    log = tmp_path / "examples.log"
    # An ordinary line between examples: adjacent git or traceback lines would be one event, one incident.
    log.write_text("".join(e.line + "\n2026-12-02 07:00:00 INFO ok\n" for p in res.patterns for e in p.examples))
    conf = write_config(tmp_path / "bundled.yaml", {"state_dir": str(tmp_path / "state"),
                                                     "patterns_dirs": [str(ROOT / "patterns")]})  # fmt: skip
    return log, conf, {p.id for p in res.patterns}


def test_replay_finds_every_pattern_test_pattern_finds(tmp_path: Path) -> None:
    """Replay runs the daemon's engine on file events: patterns with ``sources:`` match as in test-pattern."""
    log, conf, ids = _bundled_examples_log(tmp_path)
    tp = healer("test-pattern", str(ROOT / "patterns"), "--log", str(log))
    found = {line.split()[1] for line in tp.stdout.splitlines() if line[:10].strip().isdigit() and int(line.split()[0])}
    assert found == ids
    rows = [json.loads(line) for line in healer("-c", str(conf), "replay", str(log), "--json").stdout.splitlines()]
    replayed = {row["pattern"] for row in rows[:-1]}
    assert {i for i in ids if i.startswith("git-")} <= replayed  # the bundled patterns with sources: [file, journald]
    assert replayed == found


def test_replay_cuts_a_200_mb_line_in_bounded_memory(cfg: Path, tmp_path: Path) -> None:
    """sources.max_line_bytes applies to replay as to the tailer; a 200 MB line costs MBs, not GBs."""
    log = tmp_path / "huge.log"
    with log.open("wb") as fh:
        fh.write(b"ERROR BOOM disk first\nERROR BOOM net " + b"x" * (8 << 20))
        for _ in range(24):
            fh.write(b"y" * (8 << 20))
        fh.write(b"\nERROR BOOM dns last\n")
    probe = (
        "import resource, subprocess, sys; "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(r.stdout); print('RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    run = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "healer.cli", "-c", str(cfg), "replay",
                          str(log), "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
    rss_kb = int(run.stdout.rsplit("RSS_KB", 1)[1])
    rows = [json.loads(line) for line in run.stdout.split("RSS_KB")[0].splitlines() if line.strip()]
    summary = rows[-1]["summary"]
    assert summary["lines"] == 3 and summary["cut"] == 1 and summary["matches"] == 3, summary
    assert max(len(row["message"]) for row in rows[:-1]) <= 300
    assert rss_kb < 400 * 1024, f"replay of a 200 MB line used {rss_kb // 1024} MB"


def test_history_escapes_tool_output_for_the_terminal() -> None:
    """Fix details quote tool output (a command's stderr can carry a log line); history shows it inert."""
    from healer.app.reports import history_text
    from healer.app.results import HistoryResult
    from healer.core.enums import Outcome
    from healer.core.records import FixAttempt

    attempt = FixAttempt(1, 1, 1, ("command",), Outcome.FAILED, 0.0, 1.0, "exit 1: " + HOSTILE)
    text = history_text(HistoryResult({Outcome.FAILED: 1}, (attempt,), (), 10.0))
    assert "#1 incident #1 command: failed" in text and "\\x1b]0;pwned" in text
    assert not any(ch in text for ch in "\x1b\x07\x9b\u202e"), text


def test_test_pattern_scores_a_users_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = {
        "entries": [
            {"text": "OSError: [Errno 28] No space left on device", "source": "test", "label": "disk_full"},
            {"text": "ModuleNotFoundError: No module named 'yaml'", "source": "test", "label": "missing_module"},
        ]
    }
    (corpus / "mine.yaml").write_text(yaml.safe_dump(good))
    r = healer("test-pattern", str(ROOT / "patterns"), "--corpus", str(corpus))
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines() if line.startswith(("disk", "miss"))}
    assert rows["disk_full"][:4] == ["1", "1", "1.00", "1.00"]
    assert "2 entries (0 near-misses), 0 missed" in r.stdout
    # A near-miss that would get an automatic disk cleanup fails the gate, and says which entry.
    bad = {"entries": [{"text": "OSError: [Errno 28] No space left on device", "source": "test", "label": "none"}]}
    (corpus / "mine.yaml").write_text(yaml.safe_dump(bad))
    r = healer("test-pattern", str(ROOT / "patterns"), "--corpus", str(corpus))
    assert r.returncode == 1 and "GATE " in r.stdout and "mine.yaml" in r.stdout
    r = healer("test-pattern", str(ROOT / "patterns"), "--corpus", str(tmp_path / "missing"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--corpus" in r.stderr


def test_test_pattern_json_gives_one_verdict_per_input_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "INFO all good\n"
        "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection refused.\n"
        "OSError: [Errno 28] No space left on device\n"
    )
    r = healer("test-pattern", str(ROOT / "patterns"), "--log", str(log), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 2, 3]
    assert rows[0] == {"line": 1, "last_line": 1, "matches": [], "winner": None}
    assert rows[1]["winner"] == "redis-connection-refused"
    assert {"pattern": "redis-connection-refused", "family": "redis_down", "tier": "auto"} in rows[1]["matches"]
    assert rows[2]["matches"] and all(m["family"] == "disk_full" for m in rows[2]["matches"])


@pytest.mark.parametrize(
    ("state_dir", "said"),
    [
        ("{tmp}/afile/state", "state_dir: {tmp}/afile/state cannot be created: {tmp}/afile is not a directory"),
        ("/proc/healer-state", "state_dir: /proc/healer-state cannot be created: /proc refuses it"),
    ],
)
def test_check_fails_on_a_state_dir_the_daemon_could_not_write(tmp_path: Path, state_dir: str, said: str) -> None:
    """Issue 15: `healer check` (ExecStartPre) passed, then the daemon could not open its store."""
    (tmp_path / "afile").write_text("not a directory\n")
    conf = write_config(tmp_path / "c.yaml", {**base_config(tmp_path), "state_dir": state_dir.format(tmp=tmp_path)})
    r = healer("check", "-c", str(conf))
    assert r.returncode == 2, r.stdout
    line = next(x for x in r.stderr.splitlines() if "state_dir" in x)
    assert line.startswith(f"config error: {conf}: " + said.format(tmp=tmp_path)), r.stderr
    assert line.endswith("(set state_dir to a directory this user can write (under systemd: /var/lib/healer,"
                         " the unit's StateDirectory=))")  # fmt: skip
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "afile" / "state").exists() and not list(Path("/proc").glob(".healer-check-*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory modes")
def test_check_fails_on_a_read_only_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o555)
    conf = write_config(tmp_path / "c.yaml", {**base_config(tmp_path), "state_dir": str(state)})
    r = healer("check", "-c", str(conf))
    assert r.returncode == 2 and f"state_dir: {state} is not writable" in r.stderr, r.stderr


# Bad input for every subcommand: each must answer with a short error and a non-zero exit, never a traceback.
BAD_INPUT: dict[str, list[list[str]]] = {
    "run": [["-c", "{tmp}/missing.yaml"]],
    "check": [["-c", "{tmp}/missing.yaml"], ["-c", "{tmp}/broken.yaml"]],
    "setup": [["{tmp}/no-such-app"], ["{tmp}", "--fallback", "nonsense"]],
    "test-pattern": [["--log", "{tmp}/gone.log"], ["--log", "{tmp}"], ["--corpus", "{tmp}/nope"], ["--samples", "x"]],
    "replay": [["{tmp}/nope.log"], ["{tmp}"], ["{cfg}", "--source", "carrier-pigeon"], ["{cfg}", "--limit", "-1"]],
    "health": [["-c", "{tmp}/broken.yaml"]],
    "errors": [["--since", "banana"], ["--since=-5m"], ["--since", "nan"]],
    "status": [["-c", "{tmp}/missing.yaml"]],
    "fix": [["-c", "{tmp}/broken.yaml"]],
    "history": [["--limit", "banana"], ["--limit", "0"]],
    "explain": [["999"], ["banana"]],
    "approve": [["999"], ["banana"]],
    "reject": [["999"], []],
    "patterns": [["promote"], ["frobnicate"], ["promote", "nosuch"]],
    "mark": [["999", "wrong"], ["banana", "wrong"]],
    "undo": [["999"], ["banana"]],
}


def test_bad_input_cases_cover_every_subcommand() -> None:
    from healer.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    assert set(sub.choices) == set(BAD_INPUT), "add the new subcommand's bad input to BAD_INPUT"


@pytest.mark.parametrize(("cmd", "args"), [(c, a) for c, cases in BAD_INPUT.items() for a in cases])
def test_bad_input_never_shows_a_traceback(cfg: Path, tmp_path: Path, cmd: str, args: list[str]) -> None:
    (tmp_path / "broken.yaml").write_text("kill_switch: maybe\n")
    argv = [a.format(tmp=tmp_path, cfg=cfg) for a in args]
    conf = [] if "-c" in argv else ["-c", str(cfg)]
    r = healer(*conf, cmd, *argv)
    assert r.returncode != 0, (cmd, argv, r.stdout)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert errors or "No incident #999" in r.stdout or "Unknown approval" in r.stdout, (r.stdout, r.stderr)
    assert all(len(line) < 400 for line in errors), errors


def test_check_fails_on_every_kind_of_fix_that_can_never_run(tmp_path: Path) -> None:
    """Issue 14 §5: an unconfigured action, a command or unit no allowlist names: exit 2, file, key, fix."""
    own = {
        "patterns": [
            {"id": "cmd-unknown", "regex": "BOOM", "examples": ["BOOM"],
             "remediation": [{"action": "command", "params": {"command": "nope"}}]},
            {"id": "unit-unknown", "regex": "RST", "examples": ["RST"],
             "remediation": [{"action": "restart", "params": {"service": "db"}}]},
            {"id": "pip-unset", "regex": "PIP", "examples": ["PIP"],
             "remediation": [{"action": "pip_install", "params": {"package": "requests"}}]},
        ]
    }  # fmt: skip
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "own.yaml").write_text(yaml.safe_dump(own, sort_keys=False))
    cfg = base_config(tmp_path)
    cfg["actions"]["restart"] = {"units": {"web": {"unit": "web.service"}}}
    r = healer("check", "-c", str(write_config(tmp_path / "c.yaml", cfg)))
    assert r.returncode == 2
    own_file = tmp_path / "patterns" / "own.yaml"
    errors = [line for line in r.stderr.splitlines() if "can never act" in line]
    fix = " (fix the config, or give the pattern approval: never)"
    assert errors == [
        f"pattern error: {own_file}:2 [cmd-unknown] can never act: command: command 'nope' is not in "
        "actions.command.commands" + fix,
        f"pattern error: {own_file}:10 [unit-unknown] can never act: restart: service 'db' is not in "
        "actions.restart.units; it will not be restarted" + fix,
        f"pattern error: {own_file}:18 [pip-unset] can never act: pip_install: pip_install is not configured: "
        "add an actions.pip_install section to the config" + fix,
    ], r.stderr
