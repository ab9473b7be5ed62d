"""Multi-line events as a user sees them: real tracebacks, real git output, real Node and Java stack traces.

Each error text is made by running the real program (tests/support/realerrors.py),
written to a real log file, and judged through the CLI: ``healer replay --json``
(the incidents the daemon would open) and ``healer test-pattern --log --json``
(one verdict per line or per assembled event). The same logs with assembly off
show what the feature changes: one fault, several incidents.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.daemon import Daemon, base_config, wait_for
from support.realerrors import (
    closed_port,
    git_merge_conflict,
    java_stderr,
    node_stderr,
    psycopg2_refused_traceback,
    redis_refused_traceback,
)

from healer.core.paths import bundled_patterns_dir

BEFORE = "2026-12-02 07:00:00,001 ERROR    [worker-1] app.cache: ping failed, traceback follows\n"
AFTER = "2026-12-02 07:00:01,002 INFO     [worker-2] app.api: GET /healthz 200\n"


def healer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "healer.cli", *args], capture_output=True, text=True, timeout=120)


def config(tmp: Path, **multiline: Any) -> Path:
    path = tmp / "config.yaml"
    cfg: dict[str, Any] = {"state_dir": str(tmp / "state"), "sources": {"multiline": multiline}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_log(tmp: Path, *parts: str) -> Path:
    log = tmp / "app.log"
    log.write_text("".join(p if p.endswith("\n") else p + "\n" for p in parts))
    return log


def replay_patterns(cfg: Path, log: Path) -> list[str]:
    """The pattern of every incident ``healer replay --json`` reports, in incident order."""
    r = healer("-c", str(cfg), "replay", str(log), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    return [row["pattern"] for row in rows if "incident" in row]


def verdicts(log: Path, cfg: Path | None = None) -> list[dict[str, Any]]:
    args = ["-c", str(cfg), "test-pattern"] if cfg else ["test-pattern", str(bundled_patterns_dir())]
    r = healer(*args, "--log", str(log), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_a_redis_outage_traceback_is_one_incident(tmp_path: Path) -> None:
    tb = redis_refused_traceback()
    assert "During handling of the above exception" in tb  # redis-py chains it from ConnectionRefusedError
    log = write_log(tmp_path, BEFORE, tb, AFTER)
    assert replay_patterns(config(tmp_path), log) == ["redis-connection-refused"]
    # Line by line, the same fault was three incidents.
    (tmp_path / "off").mkdir()
    off = replay_patterns(config(tmp_path / "off", enabled=False), log)
    assert sorted(off) == ["net-connection-refused", "python-traceback", "redis-connection-refused"]


def test_test_pattern_json_gives_one_verdict_per_event_with_its_first_and_last_line(tmp_path: Path) -> None:
    tb = redis_refused_traceback()
    log = write_log(tmp_path, BEFORE, tb, AFTER)
    n_tb = len(tb.splitlines())
    got = verdicts(log)
    assert [(v["line"], v["last_line"]) for v in got] == [(1, 1), (2, 1 + n_tb), (2 + n_tb, 2 + n_tb)]
    event = got[1]
    assert event["winner"] == "redis-connection-refused"
    matched = {m["pattern"]: (m["family"], m["tier"]) for m in event["matches"]}
    # supersedes dropped the generic connection-refused match; the catch-all stays as evidence.
    assert matched == {"redis-connection-refused": ("redis_down", "auto"), "python-traceback": ("unknown", "never")}
    assert got[0]["matches"] == got[2]["matches"] == []


def test_both_chain_sentences_join_the_tracebacks(tmp_path: Path) -> None:
    from support.realerrors import python_stderr

    cause = python_stderr(
        "import socket\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {closed_port()}), timeout=5)\n"
        "except OSError as exc:\n    raise RuntimeError('cache unreachable') from exc\n"
    )
    assert "The above exception was the direct cause of the following exception:" in cause
    log = write_log(tmp_path, BEFORE, cause, AFTER)
    got = verdicts(log)
    assert len(got) == 3, got
    assert got[1]["last_line"] - got[1]["line"] + 1 == len(cause.splitlines())
    # The cause's ConnectionRefusedError line is matched inside the event; the catch-all is evidence.
    assert got[1]["winner"] == "net-connection-refused"


def test_a_libpq_error_keeps_its_hint_lines(tmp_path: Path) -> None:
    tb = psycopg2_refused_traceback()
    assert "\tIs the server running on that host" in tb
    log = write_log(tmp_path, BEFORE, tb, AFTER)
    got = verdicts(log)
    hint = 1 + len(tb.rstrip("\n").splitlines())  # psycopg2's message ends with a newline: a blank line
    assert [(v["line"], v["last_line"]) for v in got] == [(1, 1), (2, hint), (hint + 1, hint + 1), (hint + 2, hint + 2)]
    assert got[1]["winner"] == "db-postgres-connection-refused"
    assert replay_patterns(config(tmp_path), log) == ["db-postgres-connection-refused"]


def test_a_git_conflict_is_one_incident(tmp_path: Path) -> None:
    out = git_merge_conflict(tmp_path / "git")
    assert out.count("CONFLICT (content)") == 2 and "Automatic merge failed" in out
    log = write_log(tmp_path, "2026-12-02 07:00:00,001 ERROR app.deploy: git pull failed, output follows:", out, AFTER)
    assert replay_patterns(config(tmp_path), log) == ["git-merge-conflict"]
    got = [v for v in verdicts(log) if v["matches"]]
    assert len(got) == 1 and got[0]["winner"] == "git-merge-conflict"
    assert {m["pattern"] for m in got[0]["matches"]} == {"git-merge-conflict", "git-automatic-merge-failed"}


def test_a_node_stack_trace_is_one_event(tmp_path: Path) -> None:
    err = node_stderr(f"require('net').connect({closed_port()}, '127.0.0.1')")
    assert "    at " in err
    log = write_log(tmp_path, err, AFTER)
    (event,) = [v for v in verdicts(log) if v["matches"]]
    assert event["winner"] == "net-econnrefused"
    lines = err.splitlines()
    first = next(i for i, line in enumerate(lines, 1) if line.startswith("Error: connect ECONNREFUSED"))
    assert event["line"] == first
    # Its "    at ..." frames, the emitter's frames and the error's fields up to the closing brace came with it.
    assert event["last_line"] == next(i for i, line in enumerate(lines, 1) if line == "}")


def test_a_java_cause_line_is_matched_inside_its_stack_trace(tmp_path: Path) -> None:
    src = (
        "public class Main {\n"
        "  public static void main(String[] a) throws Exception {\n"
        f'    try {{ new java.net.Socket("127.0.0.1", {closed_port()}); }}\n'
        '    catch (java.io.IOException e) { throw new RuntimeException("cache unreachable", e); }\n'
        "  }\n"
        "}\n"
    )
    err = java_stderr(tmp_path, src)
    assert "Caused by: java.net.ConnectException: Connection refused" in err
    log = write_log(tmp_path, err, AFTER)
    got = verdicts(log)
    (event,) = [v for v in got if v["matches"]]
    assert event["winner"] == "net-connect-error-other"
    assert (event["line"], event["last_line"]) == (1, len(err.splitlines()))


def test_an_event_is_bounded_by_max_lines(tmp_path: Path) -> None:
    tb = redis_refused_traceback()
    log = write_log(tmp_path, tb)
    got = verdicts(log, config(tmp_path, max_lines=4))
    assert all(v["last_line"] - v["line"] < 4 for v in got)
    assert got[0]["line"] == 1 and got[0]["last_line"] == 4
    assert sum(v["last_line"] - v["line"] + 1 for v in got) == len(tb.splitlines())  # no line lost or doubled


@pytest.mark.parametrize("key,value", [("max_lines", 1), ("max_bytes", 10), ("flush_after", 0), ("colour", 1)])
def test_bad_multiline_settings_name_the_key(tmp_path: Path, key: str, value: Any) -> None:
    r = healer("-c", str(config(tmp_path, **{key: value})), "check")
    assert r.returncode == 2
    assert f"sources.multiline.{key}" in r.stderr


def test_the_daemon_opens_one_incident_for_a_traceback_written_in_pieces(tmp_path: Path) -> None:
    tb = redis_refused_traceback()
    cfg = base_config(tmp_path, patterns_dirs=[str(bundled_patterns_dir())], dry_run=True)
    log = tmp_path / "logs" / "app.log"
    log.write_text("")
    head, sep, rest = tb.partition("During handling")
    d = Daemon(tmp_path, cfg, patterns=None).start()
    try:
        with log.open("a") as fh:
            fh.write(BEFORE + head)
            fh.flush()
            # The rest comes in a second write, as from a program writing stderr line by line;
            # nothing follows it, so the daemon hands the event out after flush_after of quiet.
            fh.write(sep + rest)
        wait_for(lambda: any(i.pattern_id == "redis-connection-refused" for i in d.store.incidents()), timeout=15)
        errors = d.cli("errors", "--since", "1h")
        incidents = d.store.incidents()
        explain = d.cli("explain", str(incidents[0].id))
    finally:
        d.stop()
    assert [i.pattern_id for i in incidents] == ["redis-connection-refused"], errors.stdout
    assert "python-traceback" not in errors.stdout and "net-connection-refused" not in errors.stdout
    # The incident says what matched, not the traceback's header; the other matches are evidence.
    assert "Error 111 connecting to localhost:6379. Connection refused." in errors.stdout, errors.stdout
    n = len(tb.rstrip("\n").splitlines())
    assert f"one event of {n} lines; also matched (evidence, no incident): " in explain.stdout, explain.stdout
    evidence = explain.stdout.split("no incident): ")[1].splitlines()[0].split(", ")
    assert {"python-traceback", "net-connection-refused"} <= set(evidence)
