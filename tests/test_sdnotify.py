"""sd_notify over a real datagram socket, path and abstract names."""

from __future__ import annotations

import os
import time

import pytest
import structlog.testing
from support.notify_socket import NotifySocket

from healer.service.sdnotify import Notifier


@pytest.fixture(params=["path", "abstract"])
def ns(request, tmp_path):
    with NotifySocket(tmp_path, abstract=request.param == "abstract") as sock:
        yield sock


def test_abstract_address_spelled_with_at(tmp_path):
    with NotifySocket(abstract=True) as sock:
        assert sock.address.startswith("@")


def test_ready_watchdog_status_stopping(ns):
    n = Notifier({"NOTIFY_SOCKET": ns.address})
    assert n.enabled
    assert n.ready()
    assert ns.receive() == {"READY": "1"}
    assert n.watchdog()
    assert ns.receive() == {"WATCHDOG": "1"}
    assert n.status("tailing 3 sources")
    assert ns.receive() == {"STATUS": "tailing 3 sources"}
    assert n.stopping()
    assert ns.receive() == {"STOPPING": "1"}
    assert n.ready(status="reloaded")
    assert ns.receive() == {"READY": "1", "STATUS": "reloaded"}


def test_reloading_carries_monotonic_usec(ns):
    n = Notifier({"NOTIFY_SOCKET": ns.address})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    msg = ns.receive()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert msg is not None and msg["RELOADING"] == "1"
    assert before <= int(msg["MONOTONIC_USEC"]) <= after


def test_one_datagram_per_call(ns):
    n = Notifier({"NOTIFY_SOCKET": ns.address})
    n.notify(READY=1, STATUS="ok", MAINPID=os.getpid())
    assert len(ns.drain()) == 1
    assert ns.raw[0] == f"READY=1\nSTATUS=ok\nMAINPID={os.getpid()}\n".encode()


def test_newline_in_value_cannot_inject_fields(ns):
    n = Notifier({"NOTIFY_SOCKET": ns.address})
    n.status("boom\nREADY=1\nMAINPID=1")
    msg = ns.receive()
    assert msg == {"STATUS": "boom READY=1 MAINPID=1"}


def test_bad_field_name_is_a_caller_bug(ns):
    n = Notifier({"NOTIFY_SOCKET": ns.address})
    with pytest.raises(ValueError):
        n.notify(**{"READY=1\nX": 1})


def test_noop_without_socket():
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog() is False
    assert n.watchdog_interval() is None


def test_reads_os_environ_by_default(ns, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", ns.address)
    Notifier().ready()
    assert ns.receive() == {"READY": "1"}


def test_send_failure_never_raises_and_logs_once(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert n.watchdog() is False
    assert n.failures == 3
    assert [e["event"] for e in logs] == ["sd_notify send failed"]


def test_relative_address_is_ignored():
    n = Notifier({"NOTIFY_SOCKET": "relative/path"})
    assert not n.enabled
    assert n.ready() is False


def test_watchdog_interval():
    pid = str(os.getpid())
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}).watchdog_interval() == 30.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}).ping_period() == 15.0
    assert Notifier({"WATCHDOG_USEC": "2500000"}).watchdog_interval() == 2.5
    # Inherited from a parent: not ours to ping.
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "garbage"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "1", "WATCHDOG_PID": "x"}).watchdog_interval() is None
