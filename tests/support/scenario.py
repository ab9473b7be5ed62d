"""The scenario rig (issue 12): a real app directory, broken for real, configured by ``healer setup``.

Every scenario builds the real broken state (a venv, a git checkout and its
bare remote, a supervisord program, a tmpfs, a local HTTP API), makes the real
tool fail so that its real output lands in a log of the app, writes the config
with ``healer setup`` (:func:`configure`, no hand edits of the app block) and
runs the real daemon (:class:`Scenario`). It then reads what a user reads:
files on disk, ``healer history``/``errors``/``explain``, the daemon's log.
Only what an app block cannot say (engine timings, ``disk_cleanup``, where
``supervisorctl`` is) is written by :func:`tune`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from healer.cli import main
from healer.service.housekeeping import SWEEP_INTERVAL
from healer.store.db import Store
from support.daemon import HEALER, DaemonProcess, wait_for, write_yaml

BIN = Path(sys.executable).parent
SUPERVISORD = BIN / "supervisord"
SUPERVISORCTL = BIN / "supervisorctl"
# A scenario waits at most this long for what a user would see; healing must take less (issue 12: 10 s).
HEAL_WITHIN = 10.0
GIT_ID = ("-c", "user.name=dev", "-c", "user.email=dev@example.invalid", "-c", "init.defaultBranch=main")

# What the table in the terminal summary shows, one row per scenario run.
ROWS: list[tuple[str, str, str, str, str]] = []


def record(scenario: str, verdict: str, harmed: bool, seconds: float | None, outcome: str) -> None:
    ROWS.append((scenario, verdict, "yes" if harmed else "no", "-" if seconds is None else f"{seconds:.1f}", outcome))


# ------------------------------------------------------------------ configure: healer setup


def configure(
    config: Path,
    app_dir: Path,
    *,
    name: str | None = None,
    supervisor_conf: Path | None = None,
    fallback: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``healer -c CONFIG setup APP_DIR --yes`` as a new user runs it; returns the app block it wrote."""
    argv = [*HEALER, "-c", str(config), "setup", str(app_dir), "--yes"]
    argv += ["--name", name] if name else []
    argv += ["--supervisor-conf", str(supervisor_conf)] if supervisor_conf else []
    for provider, model in (fallback or {}).items():
        argv += ["--fallback", f"{provider}={model}"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    app: dict[str, Any] = yaml.safe_load(config.read_text())["apps"][name or app_dir.name]
    return app


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def tune(config: Path, **sections: Any) -> None:
    """What an app block cannot express (engine timings, disk_cleanup, the supervisord socket), merged in."""
    cfg = yaml.safe_load(config.read_text())
    _merge(cfg, sections)
    write_yaml(config, cfg)


# ------------------------------------------------------------------ what must not change


def tree_digest(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> dict[str, str]:
    """Every regular file under ``root`` (symlinks as their target text) -> a digest of its bytes."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if skip(path):
            continue
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """git with a fixed identity and no system or global config, as a developer's own shell runs it."""
    env = {"PATH": os.environ["PATH"], "HOME": str(repo), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
    return subprocess.run(
        ["git", *GIT_ID, "-C", str(repo), *args], capture_output=True, text=True, timeout=30, env=env, check=check
    )


def refs(repo: Path) -> dict[str, str]:
    """Every ref of ``repo`` -> its commit."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)").stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


# ------------------------------------------------------------------ real services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Supervisor:
    """A real supervisord in ``root`` with the programs given (``name -> ini lines``)."""

    root: Path
    programs: Mapping[str, str]
    conf: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf = self.root / "supervisord.conf"
        body = "\n".join(f"[program:{name}]\n{ini.strip()}\n" for name, ini in self.programs.items())
        self.conf.write_text(
            f"[unix_http_server]\nfile={self.root}/supervisor.sock\n\n"
            f"[supervisord]\nlogfile={self.root}/supervisord.log\npidfile={self.root}/supervisord.pid\n"
            f"childlogdir={self.root}\nnodaemon=false\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{self.root}/supervisor.sock\n\n{body}"
        )

    def start(self) -> None:
        subprocess.run([str(SUPERVISORD), "-c", str(self.conf)], check=True, timeout=20)

    def ctl(self, *args: str) -> str:
        res = subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.conf), *args], capture_output=True, text=True, timeout=20
        )
        return res.stdout

    def state(self, program: str) -> str:
        """``RUNNING``, ``STOPPED``, ``EXITED``, ``FATAL`` ... as ``supervisorctl status`` says."""
        words = self.ctl("status", program).split()
        return words[1] if len(words) > 1 else ""

    def stop(self) -> None:
        pidfile = self.root / "supervisord.pid"
        if not pidfile.exists():
            return
        pid = int(pidfile.read_text().strip())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait(lambda: not Path(f"/proc/{pid}").exists(), 10)

    def settings(self) -> dict[str, Any]:
        """Where ``supervisorctl`` is (the test venv's, not on PATH); setup wrote ``supervisor_conf``."""
        return {"restart": {"supervisorctl": str(SUPERVISORCTL)}}


# ------------------------------------------------------------------ the daemon over a scenario's config


def wait(cond: Callable[[], Any], timeout: float = HEAL_WITHIN) -> Any:
    """:func:`support.daemon.wait_for` with the scenarios' deadline and a gentler poll (CLI reads are not free)."""
    return wait_for(cond, timeout, 0.05)


# Fast verdicts: a short verify window and grace, so a scenario settles in seconds (issue 12: < 60 s in all).
FAST_ENGINE = {"verify_window": 1.0, "verify_grace": 0.2, "fix_budget_per_hour": 50}
# A fix the CLI ran (``healer approve``) is settled by the daemon's sweep, not by a job of its own.
SETTLED_WITHIN = FAST_ENGINE["verify_window"] + SWEEP_INTERVAL + 1


class Scenario:
    """One app under ``tmp``: its config (written by :func:`configure`), the real daemon, and the CLI."""

    def __init__(self, tmp: Path, app: str = "shop") -> None:
        self.tmp = tmp
        self.app_dir = tmp / app
        self.app_dir.mkdir(parents=True, exist_ok=True)
        (self.app_dir / "logs").mkdir(exist_ok=True)
        self.log = self.app_dir / "logs" / "app.log"
        self.log.touch()
        self.config = tmp / "healer" / "config.yaml"
        self.config.parent.mkdir(exist_ok=True)
        self.daemon: DaemonProcess | None = None
        self.supervisors: list[Supervisor] = []
        self.started_at = 0.0

    def configure(self, **hints: Any) -> dict[str, Any]:
        app = configure(self.config, self.app_dir, **hints)
        tune(self.config, engine=FAST_ENGINE, telegram={"token_env": "HEALER_TEST_NO_TOKEN"})
        return app

    def start(self) -> Scenario:
        res = self.cli("check")
        assert res.returncode == 0, res.stdout + res.stderr
        self.daemon = DaemonProcess(self.config, self.tmp / "daemon.log")
        self.daemon.start()
        self.daemon.wait_ready(20)
        return self

    def supervisor(self, programs: Mapping[str, str]) -> Supervisor:
        """A real supervisord with ``programs`` for this scenario, stopped with it."""
        sv = Supervisor(self.tmp / "sv", programs)
        sv.start()
        self.supervisors.append(sv)
        return sv

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(timeout=10)
        for sv in self.supervisors:
            sv.stop()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``healer -c CONFIG ARGS``: the CLI's own ``main`` in this process (a user's shell, minus the start-up)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["-c", str(self.config), *args])
        return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())

    def out(self, *args: str) -> str:
        return self.cli(*args).stdout

    def history(self) -> str:
        return self.out("history")

    def explain(self, incident: int = 1) -> str:
        return self.out("explain", str(incident))

    def explain_all(self, most: int = 20) -> str:
        """``healer explain`` of every incident there is, one after the other."""
        texts = []
        for n in range(1, most + 1):
            res = self.cli("explain", str(n))
            if res.returncode != 0:
                break
            texts.append(res.stdout)
        return "\n".join(texts)

    def read_to(self, log: Path) -> int:
        """How far into ``log`` the daemon has committed its reading (0 before the store exists)."""
        db = self.config.parent / "state" / "healer.db"
        if not db.exists():
            return 0
        store = Store(db, readonly=True)
        try:
            offset = store.saved_offsets().get(str(log))
        finally:
            store.close()
        return 0 if offset is None else offset.position

    def caught_up(self, log: Path, timeout: float = HEAL_WITHIN) -> float:
        """Seconds until the daemon has read ``log`` to its end (for "nothing happened" to mean something)."""
        return self.until(lambda: self.read_to(log) == log.stat().st_size, timeout, f"{log} read to the end")

    def daemon_log(self) -> str:
        return self.daemon.log_text() if self.daemon is not None else ""

    def mark(self) -> None:
        """The fault is now in the log: seconds to heal count from here."""
        self.started_at = time.monotonic()

    def since(self) -> float:
        return time.monotonic() - self.started_at

    def until(self, cond: Callable[[], Any], timeout: float = HEAL_WITHIN, what: str = "") -> float:
        """Seconds from :meth:`mark` until ``cond`` holds; fails with the CLI's view after ``timeout``."""
        if not wait(cond, timeout):
            raise AssertionError(
                f"not within {timeout:g}s: {what}\n--- history\n{self.history()}\n--- explain 1\n{self.explain()}"
                f"\n--- daemon log\n{self.daemon.tail(30) if self.daemon else ''}"
            )
        return self.since()

    def until_history(self, text: str, timeout: float = HEAL_WITHIN) -> float:
        return self.until(lambda: text in self.history(), timeout, f"{text!r} in healer history")

    def write_app(self, script: str) -> None:
        (self.app_dir / "app.py").write_text(script)

    def run_app(self, *args: str, python: str = sys.executable) -> int:
        """Run the app once (one request, one job) in its directory; its stdout and stderr go to its log."""
        with self.log.open("ab") as fh:
            res = subprocess.run(
                [python, str(self.app_dir / "app.py"), *args],
                cwd=self.app_dir,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=60,
                env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"},
            )
        return res.returncode

    def pending_decision(self) -> str:
        """The id of the decision waiting for approval, as ``healer history`` lists it."""
        m = wait(lambda: re.search(r"#(\d+) incident #\d+ \S+: ask \(approval\)", self.history()))
        assert m, self.history()
        return m.group(1)

    def approve(self) -> str:
        """Approve the pending fix from the shell, as the operator would; returns ``healer approve``'s output."""
        res = self.cli("approve", self.pending_decision())
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout
