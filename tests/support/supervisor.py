"""A real supervisord for the restart tests: two TCP servers, one it restarts when it exits (autorestart).

Started once per module from the supervisor installed next to the test
interpreter (``tests/requirements-realtools.txt``); every control goes
through ``supervisorctl`` as healer's does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
SUPERVISORD = BIN / "supervisord"
SUPERVISORCTL = BIN / "supervisorctl"

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    c, _ = s.accept()
    c.sendall(b"hi\\n")
    c.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(pred: Callable[[], Any], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


@dataclass
class Supervisor:
    """``tcpserver`` stays down when it exits; ``looping`` is started again by supervisord (a crash loop)."""

    conf: Path
    port: int
    looping_port: int

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.conf), *args], capture_output=True, text=True, timeout=20
        )

    def pid(self, program: str = "tcpserver") -> int:
        return int(self.ctl("pid", program).stdout.strip())

    def running(self, program: str = "tcpserver") -> bool:
        return "RUNNING" in self.ctl("status", program).stdout

    def stop(self, program: str = "tcpserver") -> None:
        self.ctl("stop", program)
        assert wait_for(lambda: not self.running(program) and not port_open(self.port))

    def start(self, program: str = "tcpserver") -> None:
        self.ctl("start", program)
        assert wait_for(lambda: self.running(program) and port_open(self.port))

    @contextmanager
    def stopped(self, program: str = "tcpserver") -> Iterator[None]:
        """Stopped for the block; running again after it, whether healer restarted it or not."""
        self.stop(program)
        try:
            yield
        finally:
            if not self.running(program):
                self.start(program)

    def restart_settings(self, timeout: float = 10, **unit: Any) -> dict[str, Any]:
        """An ``actions.restart`` section for ``tcpserver`` checked on its port (and ``looping`` on its own)."""
        return {
            "manager": "supervisor",
            "supervisor_conf": str(self.conf),
            "supervisorctl": str(SUPERVISORCTL),
            "units": {
                "tcpserver": {"verify_tcp": f"127.0.0.1:{self.port}", "timeout": timeout, **unit},
                "looping": {"verify_tcp": f"127.0.0.1:{self.looping_port}", "timeout": timeout, **unit},
            },
        }


@contextmanager
def running_supervisor(d: Path) -> Iterator[Supervisor]:
    port, looping_port = free_port(), free_port()
    (d / "server.py").write_text(SERVER)
    conf = d / "supervisord.conf"
    conf.write_text(f"""
[unix_http_server]
file={d}/supervisor.sock

[supervisord]
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}
nodaemon=false

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{d}/supervisor.sock

[program:tcpserver]
command={sys.executable} {d}/server.py {port}
autorestart=false
startsecs=0
stopwaitsecs=2

[program:looping]
command={sys.executable} {d}/server.py {looping_port}
autorestart=true
startsecs=0
startretries=100
stopwaitsecs=2
""")
    subprocess.run([str(SUPERVISORD), "-c", str(conf)], check=True, timeout=20)
    sv = Supervisor(conf, port, looping_port)
    try:
        assert wait_for(lambda: port_open(port) and port_open(looping_port)), (d / "supervisord.log").read_text()
        yield sv
    finally:
        pidfile = d / "supervisord.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10)
