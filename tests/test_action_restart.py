"""restart against a real supervisord; systemd at the argv level (no systemd here)."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.actions import Recorder, make_ctx
from support.supervisor import (
    SUPERVISORCTL,
    Supervisor,
    free_port,
    port_open,
    wait_for,
)

from healer.core.clock import FakeClock
from healer.core.enums import AuditKind, Confirm
from healer.core.errors import ActionError, ActionRefused, HostileValue, ParamError
from healer.core.proc import ProcResult, Runner
from healer.remedy.builtin.restart import RestartAction, RestartSettings, RestartState


def sv_settings(sv: Supervisor, timeout: float = 10, **unit: Any) -> RestartSettings:
    return RestartAction.parse_settings(sv.restart_settings(timeout, **unit), "actions.restart")


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


def test_probe_confirms_a_stopped_program(supervisor: Supervisor, tmp_path: Path) -> None:
    with supervisor.stopped():
        found = RestartAction().confirm(make_ctx(sv_settings(supervisor), {"service": "tcpserver"}, tmp_path))
    assert found.status is Confirm.CONFIRMED
    assert found.detail.startswith("tcpserver is not running (supervisor: tcpserver"), found.detail


def test_probe_refutes_a_running_program_whose_port_answers(supervisor: Supervisor, tmp_path: Path) -> None:
    found = RestartAction().confirm(make_ctx(sv_settings(supervisor), {"service": "tcpserver"}, tmp_path))
    assert found.status is Confirm.REFUTED
    assert found.detail == (
        f"tcpserver is RUNNING and 127.0.0.1:{supervisor.port} accepts connections:"
        " the client's configuration is at fault"
    )


def test_probe_confirms_a_running_program_whose_port_is_closed(supervisor: Supervisor, tmp_path: Path) -> None:
    closed = free_port()
    settings = RestartAction.parse_settings(
        {
            "manager": "supervisor",
            "supervisor_conf": str(supervisor.conf),
            "supervisorctl": str(SUPERVISORCTL),
            "units": {"tcpserver": {"verify_tcp": f"127.0.0.1:{closed}"}},
        },
        "actions.restart",
    )
    found = RestartAction().confirm(make_ctx(settings, {"service": "tcpserver"}, tmp_path))
    assert found.status is Confirm.CONFIRMED
    assert found.detail.startswith(f"127.0.0.1:{closed} does not accept connections"), found.detail


class KillOnFirstLook(Recorder):
    """Once verify has seen the program up, kill it and wait until supervisord has started it again."""

    def __init__(self, sv: Supervisor, program: str) -> None:
        super().__init__()
        self.sv, self.program, self.pids = sv, program, list[int]()

    def on_audit(self, kind: str, data: Mapping[str, object]) -> None:
        super().on_audit(kind, data)
        if kind == AuditKind.RESTART_VERIFY and not self.pids:
            old = self.sv.pid(self.program)
            os.kill(old, signal.SIGKILL)
            assert wait_for(lambda: self.sv.running(self.program) and self.sv.pid(self.program) not in (0, old))
            self.pids = [old, self.sv.pid(self.program)]


def test_stay_up_catches_a_crash_loop_by_its_new_pid(supervisor: Supervisor, tmp_path: Path) -> None:
    """supervisord restarts an exiting program, so it reads RUNNING at both looks: only the pid tells."""
    rec = KillOnFirstLook(supervisor, "looping")
    ctx = make_ctx(sv_settings(supervisor, stay_up=0.2), {"service": "looping"}, tmp_path, recorder=rec)
    state: RestartState = {"service": "looping", "manager": "supervisor", "unit": "looping", "argv": []}
    result = RestartAction().verify(ctx, state)
    old, new = rec.pids
    assert not result.ok
    assert result.detail == (
        f"looping was restarted by supervisor within 0.2s (pid {old} -> {new}):"
        " it exits and is started again (a crash loop); the fix did not hold"
    )
    assert supervisor.running("looping")  # supervisord says RUNNING: the status alone would have passed it


def test_stay_up_passes_the_same_process(supervisor: Supervisor, tmp_path: Path) -> None:
    ctx = make_ctx(sv_settings(supervisor, stay_up=0.2), {"service": "looping"}, tmp_path)
    state: RestartState = {"service": "looping", "manager": "supervisor", "unit": "looping", "argv": []}
    result = RestartAction().verify(ctx, state)
    assert result.ok, result.detail
    assert f"looping running (pid {supervisor.pid('looping')})" in result.detail


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


@pytest.mark.parametrize(
    ("rc", "status", "detail"),
    [
        (3, Confirm.CONFIRMED, "nginx.service is not running (systemd: failed)"),
        (0, Confirm.REFUTED, "nginx.service is active: the client's configuration is at fault"),
    ],
)
def test_systemd_probe(tmp_path: Path, rc: int, status: Confirm, detail: str) -> None:
    settings = RestartAction.parse_settings({"units": {"web": {"unit": "nginx.service"}}}, "actions.restart")
    runner = RecordingRunner({"is-active": rc})
    found = RestartAction().confirm(make_ctx(settings, {"service": "web"}, tmp_path, runner=runner))
    assert (found.status, found.detail) == (status, detail)
    assert [r.argv for r in runner.history] == [("systemctl", "is-active", "nginx.service")]


def test_command_probe(tmp_path: Path) -> None:
    marker = tmp_path / "up"
    raw = {"manager": "command", "units": {"app": {"argv": ["touch", str(marker)]}}}
    bare = RestartAction.parse_settings(raw, "actions.restart")
    found = RestartAction().confirm(make_ctx(bare, {"service": "app"}, tmp_path))
    assert (found.status, found.detail) == (Confirm.UNKNOWN, "app has neither status_argv nor verify_tcp to look at")
    raw["units"]["app"]["status_argv"] = ["test", "-e", str(marker)]  # type: ignore[index]  # a nested literal
    settings = RestartAction.parse_settings(raw, "actions.restart")
    assert RestartAction().confirm(make_ctx(settings, {"service": "app"}, tmp_path)).status is Confirm.CONFIRMED
    marker.touch()
    assert RestartAction().confirm(make_ctx(settings, {"service": "app"}, tmp_path)).status is Confirm.REFUTED


def test_probe_of_a_unit_not_allowlisted_is_unknown_and_starts_nothing(tmp_path: Path) -> None:
    settings = RestartAction.parse_settings({"units": {"web": {}}}, "actions.restart")
    runner = Runner()
    found = RestartAction().confirm(make_ctx(settings, {"service": "db"}, tmp_path, runner=runner))
    assert (found.status, found.detail) == (
        Confirm.UNKNOWN,
        "cannot probe: service 'db' is not in actions.restart.units; it will not be restarted",
    )
    with pytest.raises(HostileValue):
        RestartAction().confirm(make_ctx(settings, {"service": "db; reboot"}, tmp_path, runner=runner))
    assert runner.history == []


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
