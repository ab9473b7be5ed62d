"""The sd_notify protocol, spoken directly.

Why not ``python-systemd``/``sdnotify`` from PyPI: the protocol is one
datagram of ``KEY=VALUE`` lines sent to the ``AF_UNIX``/``SOCK_DGRAM`` socket
named in ``$NOTIFY_SOCKET`` (see sd_notify(3)). A C extension that needs
libsystemd headers to build, or an unmaintained wrapper, costs more than the
forty lines it would save, and healer must also run where systemd is absent
(supervisor, containers, tests): there ``NOTIFY_SOCKET`` is unset and every
call is a no-op.

Sending never raises. A service manager that went away must not take the
daemon down with it, so a failed send is logged once (structlog
``healer.service.sdnotify``) and then counted silently.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("healer.service.sdnotify")

# Field names are upper-case identifiers in every documented assignment
# (READY, STATUS, EXTEND_TIMEOUT_USEC, ...); anything else is a caller bug.
_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares against.

    systemd >= 253 uses MONOTONIC_USEC to tell a RELOADING=1 sent for *this*
    reload from a stale one, so it must be the same clock systemd reads.
    """
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _address(raw: str) -> str | bytes | None:
    """Turn ``$NOTIFY_SOCKET`` into a ``sendto`` address.

    ``@name`` is a Linux abstract socket: the kernel name starts with a NUL
    byte, which cannot appear in an environment variable, so systemd spells
    it ``@``. Paths must be absolute. ``vsock:`` addresses (systemd >= 253,
    for VMs) are not supported: healer runs on the host it heals.
    """
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None


class Notifier:
    """Sends state changes to the service manager, if there is one.

    The environment is read once, at construction, because the daemon may
    scrub its environment before starting subprocesses; pass ``env`` to
    test without touching ``os.environ``.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        source = os.environ if env is None else env
        raw = source.get("NOTIFY_SOCKET", "")
        self._raw = raw
        self._address = _address(raw) if raw else None
        self._watchdog_usec = source.get("WATCHDOG_USEC", "")
        self._watchdog_pid = source.get("WATCHDOG_PID", "")
        self._warned = False
        self.failures = 0
        if raw and self._address is None:
            self._warn("unsupported NOTIFY_SOCKET address", address=raw)

    @property
    def enabled(self) -> bool:
        """True when a service manager is listening (``NOTIFY_SOCKET`` usable)."""
        return self._address is not None

    def _warn(self, message: str, **kw: object) -> None:
        if not self._warned:
            self._warned = True
            log.warning(message, **kw)

    def notify(self, **fields: object) -> bool:
        """Send one datagram with ``KEY=value`` lines; True if it was sent.

        Values are flattened to one line: a newline in a STATUS text taken
        from an error message would otherwise smuggle in a second
        assignment such as ``READY=1`` or ``MAINPID=``.
        """
        if self._address is None or not fields:
            return False
        lines = []
        for key, value in fields.items():
            if not _KEY.match(key):
                raise ValueError(f"invalid sd_notify field name: {key!r}")
            if isinstance(value, bool):
                value = int(value)
            text = str(value).replace("\r", " ").replace("\n", " ").replace("\0", " ")
            lines.append(f"{key}={text}")
        payload = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            self.failures += 1
            self._warn("sd_notify send failed", address=self._raw, error=str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) finished; systemd marks the unit active."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def reloading(self) -> bool:
        """A SIGHUP reload started; follow with ``ready()`` when it is done."""
        return self.notify(RELOADING=1, MONOTONIC_USEC=_monotonic_usec())

    def stopping(self) -> bool:
        """Shutdown started (draining running fixes); stop timeout applies."""
        return self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        """Keep-alive; must arrive within ``WatchdogSec`` or systemd restarts us."""
        return self.notify(WATCHDOG=1)

    def status(self, text: str) -> bool:
        """Free-form one-line status shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def watchdog_interval(self) -> float | None:
        """The full watchdog timeout in seconds, or None if not supervised.

        Ping every ``watchdog_interval() / 2`` seconds (sd_watchdog_enabled(3)
        recommends half) so one late tick of a busy loop is not fatal.
        ``WATCHDOG_PID`` names the process that must ping; if it is another
        process (we are a child that inherited the environment) we must not.
        """
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 1_000_000

    def ping_period(self) -> float | None:
        """Half of ``watchdog_interval()``: how often the daemon should ping."""
        interval = self.watchdog_interval()
        return None if interval is None else interval / 2
