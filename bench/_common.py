"""Shared helpers for the bench scripts: paths, the cached log, a daemon harness,
/proc readings and a fake Telegram Bot API server.

Run the scripts with the healer venv's python (``/path/to/venv/bin/python
bench/throughput``): the daemon and ``healer replay`` are started from the
same environment (``<sys.executable's dir>/healer``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = BENCH / "data"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def python() -> str:
    return sys.executable


def healer_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "healer"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("healer")
    if found:
        return [found]
    return [sys.executable, "-m", "healer.cli"]


def ensure_log(lines: int, seed: int) -> Path:
    """The generated log, made once and cached under bench/data/ (gitignored)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"app-{lines}-{seed}.log"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        subprocess.run(
            [python(), str(BENCH / "genlog.py"), "--lines", str(lines), "--seed", str(seed), "--out", str(tmp)],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        tmp.rename(path)
    return path


def ensure_ere() -> Path:
    path = BENCH / "patterns.ere"
    if not path.exists():
        with path.open("w") as fh:
            subprocess.run([python(), str(BENCH / "genlog.py"), "--ere"], check=True, stdout=fh)
    return path


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- /proc ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def machine() -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = status_like("/proc/meminfo", "MemTotal")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": os.uname().release,
    }


def status_like(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# -- a fake Telegram Bot API ------------------------------------------------------


class FakeTelegram:
    """Answers getMe/deleteWebhook/getUpdates/setMyCommands/sendMessage... with ok JSON.

    getUpdates long-polls: it sleeps until the requested timeout, then
    answers an empty list, as the real API does when nothing happens. Every
    request is counted per method; ``sent`` counts the message-sending ones.
    Runs its own event loop on a thread, so the bench's main thread stays free.
    """

    SENDING = ("sendMessage", "sendDocument", "sendPhoto", "editMessageText")

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="fake-telegram", daemon=True)
        self._msg_id = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def sent(self) -> int:
        return sum(self.calls.get(m, 0) for m in self.SENDING)

    def start(self) -> FakeTelegram:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake telegram server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            method = request.path.rstrip("/").rsplit("/", 1)[-1]
            self.calls[method] = self.calls.get(method, 0) + 1
            params: dict[str, Any] = dict(request.query)
            try:
                if request.content_type == "application/json":
                    params.update(await request.json())
                else:
                    params.update(await request.post())
            except Exception:
                pass
            if method == "getUpdates":
                try:
                    timeout = float(params.get("timeout", 0) or 0)
                except (TypeError, ValueError):
                    timeout = 0.0
                await asyncio.sleep(min(timeout, 60.0))
                return web.json_response({"ok": True, "result": []})
            if method == "getMe":
                result: Any = {
                    "id": 1,
                    "is_bot": True,
                    "first_name": "healer-bench",
                    "username": "healer_bench_bot",
                    "can_join_groups": False,
                    "can_read_all_group_messages": False,
                    "supports_inline_queries": False,
                }
            elif method in self.SENDING:
                self._msg_id += 1
                result = {
                    "message_id": self._msg_id,
                    "date": int(time.time()),
                    "chat": {"id": int(params.get("chat_id", 1) or 1), "type": "private"},
                    "text": str(params.get("text", "")),
                }
            else:
                result = True
            return web.json_response({"ok": True, "result": result})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()


# -- a daemon under test ------------------------------------------------------------


class DaemonRun:
    """``healer run -c cfg`` in a scratch directory, with its own store."""

    def __init__(
        self,
        workdir: Path,
        patterns_yaml: str | None,
        files: list[Path],
        *,
        telegram: FakeTelegram | None = None,
        webhooks: bool = False,
        metrics: bool = False,
        engine: dict[str, Any] | None = None,
        commands: dict[str, list[str]] | None = None,
    ) -> None:
        self.workdir = workdir
        self.files = files
        self.proc: subprocess.Popen[bytes] | None = None
        self.db = workdir / "state" / "healer.db"
        self.log = workdir / "daemon.log"
        cfg: dict[str, Any] = {
            "state_dir": str(workdir / "state"),
            "log_level": "info",
            "sources": {"files": [{"path": str(f), "service": f.stem} for f in files]},
            "engine": engine or {},
            "metrics": {"enabled": metrics, "host": "127.0.0.1", "port": free_port() if metrics else 9322},
            "webhooks": {"enabled": webhooks, "host": "127.0.0.1", "port": free_port() if webhooks else 9321},
        }
        # A private patterns dir: the daemon watches its patterns dirs, and on a
        # shared machine other processes read the repo's patterns/ all the time.
        pdir = workdir / "patterns"
        pdir.mkdir(parents=True, exist_ok=True)
        if patterns_yaml is not None:
            (pdir / "bench.yaml").write_text(patterns_yaml)
        else:
            for f in sorted((REPO / "patterns").glob("*.yaml")):
                shutil.copyfile(f, pdir / f.name)
        cfg["patterns_dirs"] = [str(pdir)]
        if commands:
            cfg["actions"] = {"command": {"commands": {k: {"argv": v} for k, v in commands.items()}}}
        self.env = dict(os.environ)
        self.env.pop("HEALER_TELEGRAM_TOKEN", None)
        if telegram is not None:
            cfg["telegram"] = {
                "base_url": telegram.base_url,
                "allowed_chat_ids": [1],
                "notify_chat_ids": [1],
            }
            self.env["HEALER_TELEGRAM_TOKEN"] = "123456:bench-fake-token"  # noqa: S105 - a fake for the fake server
        self.config = workdir / "config.yaml"
        # JSON is YAML: no need to import yaml in the bench process.
        self.config.write_text(json.dumps(cfg, indent=1))

    def start(self, timeout: float = 30.0) -> DaemonRun:
        for f in self.files:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.touch()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*healer_cmd(), "-c", str(self.config), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if b"daemon_ready" in self.log.read_bytes():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"daemon not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def reader(self) -> sqlite3.Connection:
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None, timeout=10)
        return db

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> DaemonRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def scratch(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=f"healer-bench-{prefix}-")
