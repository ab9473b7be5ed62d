"""A really full filesystem (a 2 MB tmpfs): old rotated logs go, fresh, unrelated and open files stay."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.scenario import Scenario, record, tune

# The app's data and rotated logs live on their own small filesystem; its error log does not.
APP = """
from pathlib import Path
with open(Path(__file__).parent / "var" / "orders.db", "ab") as fh:
    fh.write(b"o" * 900 * 1024)
    fh.flush()
print("INFO orders saved")
"""
OLD = time.time() - 10 * 86400
KB = 1024


@pytest.fixture
def tmpfs(sc: Scenario) -> Iterator[Path]:
    var = sc.app_dir / "var"
    var.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(var)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root, as CI runs): {res.stderr.strip()}")
    try:
        yield var
    finally:
        subprocess.run(["umount", "-l", str(var)], check=False)


def fill(var: Path) -> dict[str, bytes]:
    """Three old rotated logs (deletable), a fresh one, an unrelated old file, and an old one a process holds open."""
    logs = var / "logs"
    logs.mkdir()
    made = {}
    for name, size, mtime in (
        ("app.log.1", 300, OLD),
        ("app.log.2", 300, OLD),
        ("app.log.3", 300, OLD),
        ("app.log.4", 100, None),  # rotated today: too fresh to delete
        ("keep.dat", 200, OLD),  # matches no rule
        ("app.log.5", 200, OLD),  # old, but a process still writes to it
    ):
        path = logs / name
        path.write_bytes(name.encode() * (size * KB // len(name)))
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        made[name] = path.read_bytes()
    return made


def full_disk(sc: Scenario, tmpfs: Path) -> tuple[dict[str, bytes], subprocess.Popen[bytes]]:
    """The rotated logs, a process holding one open, the config; the app's write fails for real."""
    made = fill(tmpfs)
    script = "import sys, time; f = open(sys.argv[1], 'ab'); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmpfs / "logs" / "app.log.5")])
    sc.configure()
    cleanup = {"dirs": [str(tmpfs / "logs")], "rules": [{"glob": "*.log.[0-9]*", "older_than": "7d"}]}
    tune(sc.config, actions={"disk_cleanup": {**cleanup, "max_delete_bytes": "1M", "min_free_percent": 40}})
    sc.write_app(APP)
    sc.start()
    sc.mark()
    assert sc.run_app() == 1
    assert "OSError: [Errno 28] No space left on device" in sc.log.read_text()
    return made, holder


def left(tmpfs: Path, made: dict[str, bytes]) -> dict[str, bytes]:
    return {n: (tmpfs / "logs" / n).read_bytes() for n in made if (tmpfs / "logs" / n).exists()}


def test_a_full_disk_is_cleaned_of_old_rotated_logs_and_nothing_else(sc: Scenario, tmpfs: Path) -> None:
    made, holder = full_disk(sc, tmpfs)
    try:
        gone = ("app.log.1", "app.log.2", "app.log.3")
        seconds = sc.until(lambda: not any((tmpfs / "logs" / n).exists() for n in gone), what="old rotated logs gone")
        harmed = left(tmpfs, made) != {n: b for n, b in made.items() if n not in gone}
        assert not harmed, sorted(left(tmpfs, made))
        (tmpfs / "orders.db").unlink()  # the app's half-written file, as its own recovery would
        assert sc.run_app() == 0  # the next write fits
        sc.until_history("disk_cleanup: succeeded")
        record("full disk (tmpfs)", "healed", harmed, seconds, "succeeded")
    finally:
        holder.kill()
        holder.wait()
