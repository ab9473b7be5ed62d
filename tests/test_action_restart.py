"""restart against a real supervisord; systemd at the argv level (no systemd here)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.actions import make_ctx

from healer.core.clock import FakeClock
from healer.core.errors import ActionError, ActionRefused, ParamError
from healer.core.proc import ProcResult, Runner
from healer.remedy.builtin.restart import RestartAction, RestartState

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


def wait_for(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


@dataclass
class Supervisor:
    conf: Path
    port: int

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.conf), *args], capture_output=True, text=True, timeout=20
        )

    def pid(self) -> int:
        out = self.ctl("pid", "tcpserver").stdout.strip()
        return int(out)


@pytest.fixture(scope="module")
def supervisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    if not SUPERVISORD.exists():
        pytest.skip(f"supervisord not installed next to {sys.executable}")
    d = tmp_path_factory.mktemp("sv")
    port = free_port()
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
""")
    subprocess.run([str(SUPERVISORD), "-c", str(conf)], check=True, timeout=20)
    sv = Supervisor(conf, port)
    try:
        assert wait_for(lambda: port_open(port)), (d / "supervisord.log").read_text()
        yield sv
    finally:
        pidfile = d / "supervisord.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10)


def sv_settings(sv: Supervisor, timeout: float = 10):
    return RestartAction.parse_settings(
        {
            "manager": "supervisor",
            "supervisor_conf": str(sv.conf),
            "supervisorctl": str(SUPERVISORCTL),
            "units": {"tcpserver": {"verify_tcp": f"127.0.0.1:{sv.port}", "timeout": timeout}},
        },
        "actions.restart",
    )


def test_killed_program_restarted_and_port_answers(supervisor: Supervisor, tmp_path: Path) -> None:
    pid = supervisor.pid()
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not port_open(supervisor.port))
    assert wait_for(lambda: "EXITED" in supervisor.ctl("status", "tcpserver").stdout)
    runner = Runner()
    ctx = make_ctx(sv_settings(supervisor), {"service": "tcpserver"}, tmp_path, runner=runner)
    action = RestartAction()
    assert not action.reversible
    action.check(ctx)
    state = action.apply(ctx)
    assert state["argv"][-2:] == ["restart", "tcpserver"]
    result = action.verify(ctx, state)
    assert result.ok, result.detail
    assert "open" in result.detail
    assert port_open(supervisor.port)
    assert supervisor.pid() != pid


def test_running_program_restart_gets_new_pid(supervisor: Supervisor, tmp_path: Path) -> None:
    assert wait_for(lambda: port_open(supervisor.port))
    pid = supervisor.pid()
    ctx = make_ctx(sv_settings(supervisor), {"service": "tcpserver"}, tmp_path)
    state = RestartAction().apply(ctx)
    assert RestartAction().verify(ctx, state).ok
    assert supervisor.pid() != pid


def test_verify_fails_when_port_never_answers(supervisor: Supervisor, tmp_path: Path) -> None:
    s = RestartAction.parse_settings(
        {
            "manager": "supervisor",
            "supervisor_conf": str(supervisor.conf),
            "supervisorctl": str(SUPERVISORCTL),
            "units": {"tcpserver": {"verify_tcp": f"127.0.0.1:{free_port()}", "timeout": 0.5}},
        },
        "actions.restart",
    )
    ctx = make_ctx(s, {"service": "tcpserver"}, tmp_path)
    state: RestartState = {"service": "tcpserver", "manager": "supervisor", "unit": "tcpserver", "argv": []}
    result = RestartAction().verify(ctx, state)
    assert not result.ok and "tcp" in result.detail


@pytest.mark.parametrize("service", ["nginx", "tcpserver; reboot", "", "../tcpserver", "TCPSERVER"])
def test_unit_not_allowlisted_refused_no_process(tmp_path: Path, service: str) -> None:
    settings = RestartAction.parse_settings(
        {"manager": "supervisor", "supervisor_conf": "/etc/supervisord.conf", "units": {"tcpserver": {}}},
        "actions.restart",
    )
    runner = Runner()
    ctx = make_ctx(settings, {"service": service}, tmp_path, runner=runner)
    with pytest.raises(ActionRefused):
        RestartAction().check(ctx)
    with pytest.raises(ActionRefused):
        RestartAction().apply(ctx)
    assert runner.history == []


class RecordingRunner(Runner):
    """A real Runner that records argv and answers instead of executing (no systemd in the sandbox)."""

    def __init__(self, rcs: Mapping[str, int] | None = None) -> None:
        super().__init__()
        self.rcs = dict(rcs or {})

    def run(self, argv: Sequence[str], **kwargs: object) -> ProcResult:
        rc = self.rcs.get(argv[1], 0)
        res = ProcResult(tuple(argv), rc, "active\n" if rc == 0 else "failed\n", "", 0.0)
        self.history.append(res)
        return res


def test_systemd_argv(tmp_path: Path) -> None:
    settings = RestartAction.parse_settings(
        {"manager": "systemd", "units": {"web": {"unit": "nginx.service", "timeout": 1, "stay_up": 0.01}}},
        "actions.restart",
    )
    runner = RecordingRunner()
    ctx = make_ctx(settings, {"service": "web"}, tmp_path, runner=runner)
    action = RestartAction()
    assert action.target(ctx) == "unit:systemd:nginx.service"
    state = action.apply(ctx)
    assert action.verify(ctx, state).ok
    assert [r.argv for r in runner.history] == [
        ("systemctl", "restart", "nginx.service"),
        ("systemctl", "is-active", "nginx.service"),
        ("systemctl", "is-active", "nginx.service"),  # still up after stay_up
    ]


def test_systemd_failures(tmp_path: Path) -> None:
    settings = RestartAction.parse_settings(
        {"manager": "systemd", "units": {"web": {"timeout": 0.3}}}, "actions.restart"
    )
    ctx = make_ctx(settings, {"service": "web"}, tmp_path, runner=RecordingRunner({"restart": 1}))
    with pytest.raises(ActionError, match="failed rc 1"):
        RestartAction().apply(ctx)
    # A frozen clock must not make verify spin forever: the loop is bounded by a count too.
    runner = RecordingRunner({"is-active": 3})
    ctx = make_ctx(settings, {"service": "web"}, tmp_path, runner=runner, clock=FakeClock())
    state: RestartState = {"service": "web", "manager": "systemd", "unit": "web.service", "argv": []}
    result = RestartAction().verify(ctx, state)
    assert not result.ok and "not healthy" in result.detail
    assert 1 <= len(runner.history) <= 2


def test_command_manager_runs_configured_argv(tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    settings = RestartAction.parse_settings(
        {
            "manager": "command",
            "units": {
                "app": {
                    "argv": ["touch", str(marker)],
                    "status_argv": ["test", "-e", str(marker)],
                    "timeout": 2,
                }
            },
        },
        "actions.restart",
    )
    ctx = make_ctx(settings, {"service": "app"}, tmp_path)
    state = RestartAction().apply(ctx)
    assert marker.exists()
    assert RestartAction().verify(ctx, state).ok


def test_settings_errors() -> None:
    with pytest.raises(ParamError, match=r"^actions.restart.units"):
        RestartAction.parse_settings({"manager": "systemd"}, "actions.restart")
    with pytest.raises(ParamError, match="supervisor_conf"):
        RestartAction.parse_settings({"manager": "supervisor", "units": {"a": {}}}, "actions.restart")
    with pytest.raises(ParamError, match="verify_tcp"):
        RestartAction.parse_settings({"units": {"a": {"verify_tcp": "localhost"}}}, "actions.restart")
    with pytest.raises(ParamError, match="argv"):
        RestartAction.parse_settings({"units": {"a": {"argv": ["x"]}}}, "actions.restart")
    with pytest.raises(ParamError, match="unit"):
        RestartAction.parse_settings({"units": {"a": {"unit": "-x; y"}}}, "actions.restart")
