"""The one subprocess wrapper: what a child sees of healer's environment, its timeout, its output bound."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from support.actions import Recorder, make_ctx

from healer.core.proc import OUTPUT_LIMIT, Runner
from healer.remedy.builtin.command import CommandAction

PRINT_ENV = "import os; print('\\n'.join(f'{k}={v}' for k, v in sorted(os.environ.items())))"


def test_a_command_sees_only_allowlisted_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALER_TELEGRAM_TOKEN", "secret-token")
    monkeypatch.setenv("HEALER_SENTRY_SECRET", "secret-hmac")
    monkeypatch.setenv("GIT_TRACE", "1")
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    monkeypatch.setenv("LC_TIME", "C")
    script = tmp_path / "show-env.sh"
    script.write_text("#!/bin/sh\nenv\n")
    script.chmod(0o755)
    settings = CommandAction.parse_settings({"commands": {"env": {"argv": [str(script)]}}}, "actions.command")
    rec = Recorder()
    ctx = make_ctx(settings, {"command": "env"}, tmp_path, recorder=rec)
    CommandAction().apply(ctx)
    [(kind, audit)] = rec.audit
    assert kind == "proc" and audit["step"] == "command" and audit["rc"] == 0
    names = {line.split("=", 1)[0] for line in audit["output"].splitlines()}
    assert "PATH" in names and "LC_TIME" in names
    # sh adds PWD and SHLVL itself; nothing else may appear.
    assert names <= {"PATH", "HOME", "LANG", "LC_TIME", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "PWD", "SHLVL", "_"}, names
    assert "secret" not in audit["output"]


def test_explicit_values_and_inherited_names_are_the_only_additions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HEALER_TELEGRAM_TOKEN", "secret-token")
    res = Runner().run([sys.executable, "-c", PRINT_ENV], env={"PYTHONNOUSERSITE": "1"}, inherit=("HTTPS_PROXY",))
    assert "PYTHONNOUSERSITE=1" in res.stdout and "HTTPS_PROXY=http://proxy.invalid:3128" in res.stdout
    assert "HEALER_TELEGRAM_TOKEN" not in res.stdout


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_whole_process_group() -> None:
    """What the child started (git's remote helpers, pip's builds) dies with it, and healer is not held up."""
    start = time.monotonic()
    res = Runner().run(["sh", "-c", "sleep 30 & echo $!; sleep 30"], timeout=1)
    assert res.timed_out and not res.ok
    assert time.monotonic() - start < 10
    grandchild = int(res.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_output_is_bounded_while_it_is_read() -> None:
    res = Runner().run([sys.executable, "-c", "import sys; sys.stdout.write('a' * 5_000_000 + 'END')"])
    assert res.ok
    assert len(res.stdout) < OUTPUT_LIMIT + 100
    assert res.stdout.startswith("aaa") and res.stdout.endswith("END") and "bytes cut" in res.stdout


def test_a_child_that_closes_its_pipes_a_moment_before_it_exits_is_not_killed() -> None:
    """The pipes reach EOF before the exit status exists; that gap must not be taken for a hang."""
    runner = Runner()
    results = [runner.run(["touch", "/dev/null"]) for _ in range(300)]
    assert [r.returncode for r in results if not r.ok] == []
