"""A stand-in for systemd's notification socket, for tests.

Binds an ``AF_UNIX``/``SOCK_DGRAM`` socket (a file path, or an abstract
``@name``) and collects what a process sends with sd_notify. Usage::

    with NotifySocket(tmp_path) as ns:
        env = {**os.environ, "NOTIFY_SOCKET": ns.address}
        proc = subprocess.Popen([...], env=env)
        ns.wait_for("READY", "1", timeout=10)

Datagrams are parsed into dicts (``{"READY": "1", "STATUS": "..."}``);
``messages`` holds every one received so far, in order.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from types import TracebackType


class NotifySocket:
    def __init__(self, directory: Path | str | None = None, *, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._path: Path | None = None
        if abstract:
            name = f"healer-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
            self.sock.bind(b"\0" + name.encode())
            self.address = "@" + name
        else:
            base = Path(directory) if directory is not None else Path("/tmp")
            # sun_path is limited to 108 bytes; pytest tmp paths can be long.
            path = base / "notify.sock"
            if len(os.fsencode(path)) > 100:
                path = Path("/tmp") / f"healer-notify-{uuid.uuid4().hex[:12]}.sock"
            self.sock.bind(str(path))
            self._path = path
            self.address = str(path)
        self.messages: list[dict[str, str]] = []
        self.raw: list[bytes] = []

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()
        if self._path is not None:
            try:
                self._path.unlink()
            except FileNotFoundError:
                pass

    @staticmethod
    def parse(data: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in data.decode("utf-8", "replace").split("\n"):
            if not line:
                continue
            key, _, value = line.partition("=")
            out[key] = value
        return out

    def receive(self, timeout: float = 5.0) -> dict[str, str] | None:
        """The next datagram, parsed, or None after ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        self.raw.append(data)
        msg = self.parse(data)
        self.messages.append(msg)
        return msg

    def wait_for(self, key: str, value: str | None = None, timeout: float = 10.0) -> dict[str, str]:
        """Collect until a datagram has ``key`` (equal to ``value`` if given).

        Checks messages already received first. Raises TimeoutError with
        everything seen so far, which is what you want in a failing test.
        """
        for msg in self.messages:
            if key in msg and (value is None or msg[key] == value):
                return msg
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {key}={value} within {timeout}s; got {self.messages!r}")
            got = self.receive(left)
            if got is not None and key in got and (value is None or got[key] == value):
                return got

    def drain(self, timeout: float = 0.2) -> list[dict[str, str]]:
        """Everything that arrives until the socket is quiet for ``timeout``."""
        got = []
        while (msg := self.receive(timeout)) is not None:
            got.append(msg)
        return got
