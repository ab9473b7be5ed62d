"""healer installed into a live-systemd container exactly as the README says, and what the tests do with it.

The checkout is snapshotted and built into a wheelhouse on the host (healer's
wheel plus every dependency), both bind-mounted read-only into the container;
``systemd/install.sh`` then runs inside it with ``--package`` that wheel and
``--no-index`` pip, so the tier needs no PyPI from inside and installs what the
checkout is, not what an index has.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from support.install import snapshot_with_wheel
from support.nspawn import Container
from support.waiting import wait_for

SRC = "/mnt/healer-src"
WHEELS = "/mnt/healer-wheels"
CONFIG = "/etc/healer/config.yaml"
HEALER = "/opt/healer/bin/healer"
BUNDLED_PATTERNS = "/opt/healer/share/healer/patterns"
TEST_PATTERNS = "/etc/healer/patterns.d"
TEST_LOGS = "/srv/healer-test/logs"
TARGET = "healer-target.service"
OTHER = "healer-other.service"
SAYER = "healer-sayer.service"
SAY_FILE = "/srv/healer-test/say.txt"
SLOW_FIX = 4  # seconds the slow-fix command runs: well inside engine.drain_timeout (20 s)

# Small real units: one healer may restart, one it may not, one that logs to the journal on demand.
UNITS = {
    TARGET: "[Unit]\nDescription=healer test: restartable target\n[Service]\nExecStart=/bin/sleep infinity\n",
    OTHER: "[Unit]\nDescription=healer test: not on the allowlist\n[Service]\nExecStart=/bin/sleep infinity\n",
    SAYER: (
        "[Unit]\nDescription=healer test: logs the lines of a file to the journal\n"
        f"[Service]\nType=oneshot\nExecStart=/bin/cat {SAY_FILE}\n"
    ),
}

PATTERNS = """\
patterns:
  - id: test-target-down
    family: unknown
    description: the test target unit failed; restart it
    severity: high
    regex: 'HEALER-TARGET-DOWN'
    remediation:
      - action: restart
        params: {service: target}
    threshold: 1
    cooldown: 0
    max_attempts: 3
    approval: auto
    examples: ["ERROR HEALER-TARGET-DOWN please restart"]
  - id: test-slow-fix
    family: unknown
    description: a fix that takes a few seconds, to stop healer in the middle of it
    severity: high
    regex: 'HEALER-SLOW-FIX'
    remediation:
      - action: command
        params: {command: slow-fix}
    threshold: 1
    cooldown: 0
    max_attempts: 3
    approval: auto
    examples: ["ERROR HEALER-SLOW-FIX now"]
  - id: test-journal-line
    family: unknown
    description: a numbered line the sayer unit logs through the journal
    severity: low
    regex: 'HEALER-JOURNAL-TEST seq=(?P<seq>[0-9]{1,6})'
    threshold: 1
    cooldown: 0
    examples: ["ERROR HEALER-JOURNAL-TEST seq=1"]
"""


def snapshot_wheelhouse(src: Path, wheels: Path) -> tuple[Path, Path]:
    """A snapshot of the checkout and a wheelhouse: healer's wheel (``pip wheel``) and all it depends on."""
    src, wheel = snapshot_with_wheel(src, wheels)
    argv = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-w", str(wheels), str(wheel)]
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return src, wheels


def _wheel_name(box: Container) -> str:
    (wheel,) = (p.name for p in box.path(WHEELS).glob("healer-*.whl"))
    return wheel


@dataclass
class Rig:
    box: Container
    installed: subprocess.CompletedProcess[str]
    example: dict[str, Any]

    @classmethod
    def install(cls, box: Container) -> Rig:
        res = cls.run_install(box)
        example = yaml.safe_load(box.path(CONFIG).read_text())
        for name, text in UNITS.items():
            box.write(f"/etc/systemd/system/{name}", text)
        box.write(SAY_FILE, "")
        box.write(f"{TEST_PATTERNS}/test.yaml", PATTERNS, mode=0o644)
        box.run(["mkdir", "-p", TEST_LOGS])
        box.run(["systemctl", "daemon-reload"])
        box.run(["systemctl", "start", TARGET, OTHER])
        return cls(box, res, example)

    @staticmethod
    def run_install(box: Container, *extra: str) -> subprocess.CompletedProcess[str]:
        """The README's install step, with the checkout's wheel instead of a build from source."""
        argv = ["bash", f"{SRC}/systemd/install.sh", "--source", SRC, "--package", f"{WHEELS}/{_wheel_name(box)}"]
        argv += ["--pip-args", f"--no-index --find-links {WHEELS}", *extra]
        return box.run(argv, timeout=600)

    # ----------------------------------------------------------- config
    def test_config(self, **changes: Any) -> dict[str, Any]:
        """The installed example config plus the test's sources, patterns and restart allowlist."""
        cfg = yaml.safe_load(yaml.safe_dump(self.example))
        cfg["patterns_dirs"] = [BUNDLED_PATTERNS, TEST_PATTERNS]
        cfg["sources"]["files"] = [{"path": f"{TEST_LOGS}/*.log", "service": "demo"}]
        # directory: inside nspawn, a journalctl --follow in a unit with ProtectKernelTunables=
        # or ProtectControlGroups= sees no new entries in its default (local) mode, and
        # does with an explicit --directory (measured; see systemd/README.md).
        cfg["sources"]["journald"] = [{"units": [SAYER], "service": "sayer", "directory": "/var/log/journal"}]
        cfg["actions"]["command"]["commands"]["slow-fix"] = {"argv": ["sleep", str(SLOW_FIX)]}
        cfg["actions"]["restart"] = {"units": {"target": {"unit": TARGET, "timeout": 10}}}
        cfg.update(changes)
        return cfg

    def write_config(self, cfg: dict[str, Any] | str, path: str = CONFIG) -> None:
        text = cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False)
        self.box.write(path, text, mode=0o640, owner="root:healer")

    def use_test_config(self, **changes: Any) -> None:
        """Switch to the test config (re-running install.sh so the polkit rule follows it) and restart."""
        self.box.write(f"{TEST_PATTERNS}/test.yaml", PATTERNS, mode=0o644)
        self.box.run(["mkdir", "-p", TEST_LOGS])
        self.write_config(self.test_config(**changes))
        self.run_install(self.box)
        self.restart()

    # ----------------------------------------------------------- service
    def restart(self) -> None:
        self.box.run(["systemctl", "reset-failed", "healer"], check=False)
        res = self.box.run(["systemctl", "restart", "healer"], check=False)
        if res.returncode != 0:
            log = self.box.run(["journalctl", "-u", "healer", "-n", "40", "--no-pager"], check=False).stdout
            raise AssertionError(f"systemctl restart healer failed: {res.stderr}\n{log}")
        self.wait_running()

    def wait_running(self, timeout: float = 60) -> None:
        wait_for(lambda: self.state() == ("active", "running"), timeout, lambda: repr(self.state()))

    def state(self) -> tuple[str, str]:
        p = self.box.show("healer", "ActiveState", "SubState")
        return p.get("ActiveState", ""), p.get("SubState", "")

    def main_pid(self) -> int:
        return int(self.box.show("healer", "MainPID")["MainPID"])

    def events(self, name: str, since_pid: int | None = None) -> list[dict[str, Any]]:
        """healer's journal records called ``name`` (optionally only from process ``since_pid``)."""
        extra = [f"_PID={since_pid}"] if since_pid else []
        return [r for r in self.box.journal("healer", *extra) if r.get("event") == name]

    def healer(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The CLI as the operator runs it, as user healer (root would leave root-owned SQLite files)."""
        return self.box.run([HEALER, "-c", CONFIG, *args], user="healer", check=check)

    def log_line(self, text: str, name: str = "app.log") -> None:
        self.box.sh(f"printf '%s\\n' {_quote(text)} >> {TEST_LOGS}/{name}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
