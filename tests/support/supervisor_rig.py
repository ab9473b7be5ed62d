"""A real supervisord in a temporary directory, with the programs a test names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.waiting import wait_until

BIN = Path(sys.executable).parent
SUPERVISORD = BIN / "supervisord"
SUPERVISORCTL = BIN / "supervisorctl"


@dataclass
class Supervisord:
    conf: Path

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.conf), *args], capture_output=True, text=True, timeout=20
        )

    def running(self, program: str) -> bool:
        return self.ctl("status", program).returncode == 0


@contextmanager
def supervisord(d: Path, programs: Mapping[str, str]) -> Iterator[Supervisord]:
    """Start supervisord with ``programs`` (name -> command line) running; stopped on exit."""
    sections = "".join(
        f"\n[program:{name}]\ncommand={command}\nautorestart=false\nstartsecs=0\nstopwaitsecs=2\n"
        for name, command in programs.items()
    )
    conf = d / "supervisord.conf"
    conf.write_text(
        f"[unix_http_server]\nfile={d}/supervisor.sock\n\n"
        f"[supervisord]\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\n"
        f"childlogdir={d}\nnodaemon=false\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        f"[supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n{sections}"
    )
    subprocess.run([str(SUPERVISORD), "-c", str(conf)], check=True, timeout=20)
    sv = Supervisord(conf)
    pidfile = d / "supervisord.pid"
    try:
        for name in programs:
            assert wait_until(lambda n=name: sv.running(n), 10), (d / "supervisord.log").read_text()  # type: ignore[misc]
        yield sv
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not Path(f"/proc/{pid}").exists(), 10)
