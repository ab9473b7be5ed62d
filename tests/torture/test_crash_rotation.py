"""Crash and rotation torture: SIGKILL the real daemon while three files rotate three ways.

A writer thread appends numbered lines ``TORTURE-ERR n=<file>:<num>`` to
``a.log`` (rename rotation), ``b.log`` (copytruncate) and ``c.log``
(delete-and-recreate), while the main thread SIGKILLs ``healer run`` at random
moments and restarts it. The store must end up with every line exactly once,
and ``PRAGMA integrity_check`` must say ``ok`` after every kill.

What is *not* tested, because no tailer can do it (documented in docs/SECURITY.md):

* copytruncate's own race (a line appended between the copy and the truncate
  is in neither file): the writer holds its lock across copy+truncate, as a
  writer that logrotate can pause would;
* two rotations of one file before healer has seen the first (the middle
  file is never at the watched path while healer looks): the writer rotates a
  file again only once the store shows healer reached the file now at the path;
* a file deleted before healer drained it: the writer deletes ``c.log`` only
  once the store's offset shows it was read to the end.

Quick mode (default): 10 kills. ``pytest tests/torture --long``: 100 kills.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from support.daemon import DaemonProcess, integrity, ro_query, write_yaml

pytestmark = pytest.mark.torture

LINE_RE = re.compile(r"TORTURE-ERR n=([abc]):(\d+)")
FILES = {"a": "rename", "b": "copytruncate", "c": "recreate"}


def _head_hash(path: Path) -> str:
    """Same as healer.sources.tail.head_hash over the file's first line."""
    try:
        with path.open("rb") as fh:
            data = fh.read(256)
    except OSError:
        return "?"
    nl = data.find(b"\n")
    head = data[: nl + 1] if nl >= 0 else (data if len(data) == 256 else b"")
    return hashlib.blake2b(head, digest_size=16).hexdigest() if head else ""


class Writer(threading.Thread):
    def __init__(self, logs: Path, db: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.logs = logs
        self.db = db
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.counts = dict.fromkeys(FILES, 0)
        self.rotations = Counter[str]()
        self.fds: dict[str, int] = {}
        self.rot_seq = 0
        self.error: BaseException | None = None
        for name in FILES:
            self._open(name)

    def path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def _open(self, name: str) -> None:
        self.fds[name] = os.open(self.path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _offset(self, name: str) -> tuple[int, int, str] | None:
        rows = ro_query(
            self.db, "SELECT inode, position, head_hash FROM offsets WHERE path = ?", (str(self.path(name)),)
        )
        return (int(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def _healer_reached_current(self, name: str) -> bool:
        """The stored offset is on the file now at the path, past its first line."""
        off = self._offset(name)
        if off is None:
            return False
        st = os.stat(self.path(name))
        return off[0] == st.st_ino and off[1] > 0 and off[2] == _head_hash(self.path(name))

    def _healer_read_all(self, name: str) -> bool:
        off = self._offset(name)
        st = os.stat(self.path(name))
        return off is not None and off[0] == st.st_ino and off[1] == st.st_size

    def write_line(self, name: str) -> None:
        with self.lock:
            n = self.counts[name]
            os.write(self.fds[name], f"2026-01-01 00:00:00 ERROR torture: TORTURE-ERR n={name}:{n} pad\n".encode())
            self.counts[name] = n + 1

    def rotate(self, name: str) -> None:
        kind = FILES[name]
        p = self.path(name)
        with self.lock:
            self.rot_seq += 1
            if kind == "rename":
                os.rename(p, p.with_name(f"{p.name}.{self.rot_seq}"))
                os.close(self.fds[name])
                self._open(name)
            elif kind == "copytruncate":
                # The writer is paused (we hold its lock) between the copy and the truncate.
                shutil.copyfile(p, p.with_name(f"{p.name}.{self.rot_seq}"))
                os.truncate(p, 0)
            else:
                os.close(self.fds[name])
                os.unlink(p)
                self._open(name)
            self.rotations[kind] += 1

    def run(self) -> None:
        try:
            recreate_wait_since: float | None = None
            last_rot = dict.fromkeys(FILES, time.monotonic())
            while not self.stop_flag.is_set():
                now = time.monotonic()
                for name in ("a", "b"):
                    self.write_line(name)
                    if now - last_rot[name] > 0.7 and self.rng.random() < 0.05 and self._healer_reached_current(name):
                        self.rotate(name)
                        self.write_line(name)  # the writer has switched: healer may stop lingering on the old file
                        last_rot[name] = now
                if recreate_wait_since is None:
                    self.write_line("c")
                    if now - last_rot["c"] > 0.7 and self.rng.random() < 0.05:
                        recreate_wait_since = now  # pause c until healer has read it to the end
                elif self._healer_read_all("c"):
                    self.rotate("c")
                    self.write_line("c")
                    recreate_wait_since = None
                    last_rot["c"] = now
                elif now - recreate_wait_since > 5:
                    recreate_wait_since = None  # healer is down for a while: keep writing, try later
                time.sleep(self.rng.uniform(0.001, 0.006))
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def _config(tmp: Path) -> Path:
    (tmp / "patterns").mkdir()
    write_yaml(
        tmp / "patterns" / "torture.yaml",
        {
            "patterns": [
                {
                    "id": "torture-err",
                    "severity": "low",
                    "regex": r"TORTURE-ERR n=(?P<file>[abc]):(?P<num>\d+)",
                    "group_by": [],
                    "threshold": 1,
                    "approval": "never",
                    "examples": ["x TORTURE-ERR n=a:1 y"],
                }
            ]
        },
    )
    return write_yaml(
        tmp / "config.yaml",
        {
            "state_dir": str(tmp / "state"),
            "patterns_dirs": [str(tmp / "patterns")],
            "sources": {"files": [{"path": str(tmp / "logs" / f"{n}.log"), "service": f"svc-{n}"} for n in FILES]},
            "telegram": {"token_env": "HEALER_TEST_NO_TOKEN"},
            "log_level": "info",
        },
    )


def _recorded(db: Path) -> Counter[tuple[str, int]]:
    """Every line the store accounts for, once per time it does.

    A storm's batch is stored as a sample (healer.engine.ingest.SAMPLE): its last
    row stands for itself and the ``elided`` lines just before it in the same file,
    which every line of these tests matches, in order, so they are numbers
    last-elided .. last-1. A row's ``count`` must say the same.
    """
    got: Counter[tuple[str, int]] = Counter()
    for msg, fields, count in ro_query(db, "SELECT message, fields, count FROM events"):
        m = LINE_RE.search(msg)
        assert m is not None, msg
        name, num = m.group(1), int(m.group(2))
        elided = int(json.loads(fields).get("elided", "0"))
        assert count == elided + 1, (msg, fields, count)
        for k in range(num - elided, num + 1):
            got[(name, k)] += 1
    return got


def test_sigkill_during_rotation_loses_and_duplicates_nothing(tmp_path: Path, long_mode: bool) -> None:
    kills_wanted = 100 if long_mode else 10
    seed = int(os.environ.get("HEALER_TORTURE_SEED", str(random.SystemRandom().randrange(1 << 30))))
    rng = random.Random(seed)
    (tmp_path / "logs").mkdir()
    cfg = _config(tmp_path)
    db = tmp_path / "state" / "healer.db"
    daemon = DaemonProcess(cfg, tmp_path / "daemon.log")
    writer = Writer(tmp_path / "logs", db, seed)
    kills = 0
    bad_integrity: list[str] = []
    t0 = time.monotonic()
    daemon.start()
    daemon.wait_ready()
    writer.start()
    try:
        while kills < kills_wanted:
            time.sleep(rng.uniform(0.05, 1.5))
            daemon.kill()
            kills += 1
            res = integrity(db)
            if res != "ok":
                bad_integrity.append(res)
            time.sleep(rng.uniform(0.0, 0.5))  # lines and rotations pile up while healer is down
            daemon.start()
            daemon.wait_ready()
            assert writer.error is None, writer.error
    finally:
        writer.stop_flag.set()
        writer.join(10)
    assert writer.error is None, writer.error
    written = {(name, i) for name, n in writer.counts.items() for i in range(n)}
    deadline = time.monotonic() + 60
    got = _recorded(db)
    while time.monotonic() < deadline and not written <= set(got):
        time.sleep(0.3)
        got = _recorded(db)
    rc = daemon.stop()
    got = _recorded(db)
    lost = sorted(written - set(got))
    dup = sorted(k for k, c in got.items() if c > 1)
    extra = sorted(set(got) - written)
    summary = (
        f"torture seed={seed} kills={kills} written={len(written)} recorded={sum(got.values())} "
        f"lost={len(lost)} duplicated={len(dup)} rotations={dict(writer.rotations)} "
        f"secs={time.monotonic() - t0:.1f}"
    )
    print(summary)
    (tmp_path / "summary.txt").write_text(summary + "\n")
    assert rc == 0, daemon.tail()
    assert not bad_integrity, bad_integrity
    assert integrity(db) == "ok"
    assert not lost, f"{summary}; first lost: {lost[:10]}\n{daemon.tail()}"
    assert not dup, f"{summary}; first duplicated: {dup[:10]}"
    assert not extra
    assert all(writer.rotations[k] > 0 for k in ("rename", "copytruncate")), summary
