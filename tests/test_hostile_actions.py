"""Hostile text in every captured group, through the real matcher, engine and actions.

Each corpus value is put in a log line that a test pattern captures into a
parameter of every action that takes one (pip_install module/package,
set_config file/key/value, restore_file file, git_sync repo, restart service,
disk_cleanup dir). The actions run with real allowlist settings; the runner
records argv and starts nothing. Pass: no argv ever contains hostile text, and
every case ends in a recorded refusal.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support.engine import make_engine
from support.tally import tally

from healer.core.enums import Outcome
from healer.core.jobs import FixJob
from healer.core.proc import ProcResult, Runner

DATA = Path(__file__).parent / "data" / "hostile"


def _corpus(name: str) -> list[str]:
    return [ln for ln in (DATA / name).read_text(encoding="utf-8").split("\n") if ln.strip()]


VALUES = sorted({*_corpus("values.txt"), *_corpus("pip_names.txt"), *_corpus("paths.txt")})
ALLOWED_TOKENS = {"requests", "PyYAML", "app", "app-env", "MODEL", "fallback", "web"}

TARGETS = {
    "pip-module": ("pip_install", {"module": "{g}"}),
    "pip-package": ("pip_install", {"package": "{g}"}),
    "cfg-file": ("set_config", {"file": "{g}", "key": "MODEL", "value": "fallback"}),
    "cfg-key": ("set_config", {"file": "app", "key": "{g}", "value": "fallback"}),
    "cfg-value": ("set_config", {"file": "app", "key": "MODEL", "value": "{g}"}),
    "restore": ("restore_file", {"file": "{g}"}),
    "git": ("git_sync", {"repo": "{g}"}),
    "restart": ("restart", {"service": "{g}"}),
    "cleanup": ("disk_cleanup", {"dir": "{g}"}),
}


class RecordingRunner(Runner):
    """Records what would have run; runs nothing, reports failure."""

    def run(self, argv: Sequence[str], **kw: object) -> ProcResult:
        res = ProcResult(tuple(argv), 1, "", "not run in tests", 0.0)
        with self._lock:
            self.history.append(res)
        return res


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "app.env").write_text("MODEL=primary\n")
    (tmp / "app.env.template").write_text("MODEL=primary\n")
    (tmp / "cache").mkdir()
    repo = tmp / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    actions = {
        "pip_install": {"python": "/tmp/hv/bin/python", "allowed": ["requests", "PyYAML"]},
        "set_config": {"files": {"app": {"path": str(tmp / "app.env"), "keys": {"MODEL": ["fallback"]}}}},
        "restore_file": {
            "files": {"app-env": {"path": str(tmp / "app.env"), "template": str(tmp / "app.env.template")}}
        },
        "git_sync": {"repos": {"app": {"path": str(repo)}}},
        "restart": {"units": {"web": {"unit": "web.service"}}},
        "disk_cleanup": {
            "dirs": [str(tmp / "cache")],
            "rules": [{"glob": "*.tmp", "older_than": "7d"}],
            "max_delete_bytes": "1M",
            "min_free_percent": 1,
        },
    }
    patterns = [
        {
            "id": f"hx-{name}",
            "regex": rf"HX-{name.upper()} value=(?P<g>.+)$",
            "remediation": [{"action": action, "params": params}],
            "cooldown": 0,
            "max_attempts": 100000,
            "group_by": ["match"],
        }
        for name, (action, params) in TARGETS.items()
    ]
    return {"tmp": tmp, "actions": actions, "patterns": patterns}


STATS = tally("hostile action cases")


@pytest.mark.parametrize("value", VALUES)
def test_hostile_group_never_reaches_a_process(value: str, env: dict[str, Any], tmp_path: Path) -> None:
    runner = RecordingRunner()
    engine = make_engine(tmp_path, env["patterns"], env["actions"], runner=runner)
    data = "".join(f"ERROR HX-{name.upper()} value={value}\n" for name in TARGETS).encode("utf-8", "surrogateescape")
    res = engine.ingest_buffer(data, "app", "hostile")
    jobs = [j for j in res.jobs if isinstance(j, FixJob)]
    for job in jobs:
        engine.run_fix(job)
    bad = [
        argv
        for argv in (r.argv for r in runner.history)
        if any(value.strip() in part for part in argv) and value.strip() not in ALLOWED_TOKENS
    ]
    assert not bad, f"hostile {value!r} reached argv {bad}"
    # Nothing may run, except pip for a dotted *module* whose top-level package is allowlisted
    # (``No module named 'requests.whl'`` is fixed by installing requests: argv has only the allowlisted name).
    dotted_ok = "." in value and value.split(".", 1)[0] in ALLOWED_TOKENS
    assert runner.history == [] or dotted_ok, [r.argv for r in runner.history]
    attempts = engine.store.attempts(limit=10_000)
    STATS["tried"] += len(TARGETS)
    for a in attempts:
        if dotted_ok and a.outcome is not Outcome.REFUSED:
            STATS["allowlisted_top_level_module"] += 1
            continue
        assert a.outcome in (Outcome.REFUSED, Outcome.FAILED, Outcome.ROLLED_BACK), a
        assert a.detail, a
        STATS["refused" if a.outcome is Outcome.REFUSED else "failed"] += 1
    # A line whose group the regex cannot capture (empty value) never decides to act: also no process.
    assert len(attempts) <= len(TARGETS), attempts  # at most one attempt per hostile line
    STATS["no_attempt"] += len(TARGETS) - len(attempts)
    engine.store.close()


def _git(cwd: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_AUTHOR_NAME": "d", "GIT_AUTHOR_EMAIL": "d@d"}
    env |= {"GIT_COMMITTER_NAME": "d", "GIT_COMMITTER_EMAIL": "d@d", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_a_checkout_writer_gets_no_code_run_and_no_secret_from_git_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 #2 as the attacker ran it: hooks + fsmonitor in the checkout, then the log line that syncs it."""
    for name, value in {
        "HEALER_TELEGRAM_TOKEN": "secret-token",
        "HEALER_SENTRY_SECRET": "secret-hmac",
        "GIT_TRACE": "1",
        "HOME": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    _git(tmp_path, "init", "-q", "--bare", "-b", "main", "origin.git")
    _git(tmp_path, "clone", "-q", "origin.git", "dev")
    dev, work, loot = tmp_path / "dev", tmp_path / "work", tmp_path / "loot"
    (dev / "app.py").write_text("v = 1\n")
    _git(dev, "add", "app.py")
    _git(dev, "commit", "-q", "-m", "one")
    _git(dev, "push", "-q", "origin", "HEAD:main")
    _git(tmp_path, "clone", "-q", "origin.git", "work")
    loot.mkdir()
    for hook in ("post-merge", "post-checkout", "reference-transaction"):
        script = work / ".git" / "hooks" / hook
        script.write_text(f"#!/bin/sh\nenv > {loot}/{hook}\n")
        script.chmod(0o755)
    monitor = tmp_path / "fsmonitor"
    monitor.write_text(f"#!/bin/sh\nenv > {loot}/fsmonitor\nexit 1\n")
    monitor.chmod(0o755)
    _git(work, "config", "core.fsmonitor", str(monitor))
    (dev / "app.py").write_text("v = 2\n")
    _git(dev, "commit", "-q", "-am", "two")
    _git(dev, "push", "-q", "origin", "HEAD:main")
    pattern = {
        "id": "git-ff",
        "regex": r"fatal: Not possible to fast-forward, aborting",
        "remediation": [{"action": "git_sync", "params": {"repo": "app"}}],
        "cooldown": 0,
    }
    engine = make_engine(tmp_path, [pattern], {"git_sync": {"repos": {"app": {"path": str(work)}}}})
    res = engine.ingest_buffer(b"fatal: Not possible to fast-forward, aborting\n", "app", "attack")
    [job] = [j for j in res.jobs if isinstance(j, FixJob)]
    attempt = engine.run_fix(job)
    engine.store.close()
    assert attempt is not None and attempt.outcome is Outcome.VERIFYING, attempt
    assert _git(work, "rev-parse", "HEAD") == _git(dev, "rev-parse", "HEAD")
    assert sorted(p.name for p in loot.iterdir()) == []
