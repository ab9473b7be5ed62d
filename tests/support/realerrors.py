"""Real multi-line error output, made by running the real tools: Python, redis-py, psycopg2, git, node, java.

Nothing here is typed in by hand: each helper runs the program that prints
the error and returns what it printed, so a test sees exactly the text a log
would hold.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python_stderr(code: str) -> str:
    """What ``python -c code`` prints on stderr; the code must fail."""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0, res.stdout
    return res.stderr


def _refused(port: int, code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if res.returncode == 0:  # a server came up on the default port meanwhile (another test's)
        pytest.skip(f"something listens on {port}; cannot make the client fail on the default port")
    return res.stderr


@functools.cache
def redis_refused_traceback() -> str:
    """redis-py's traceback for a stopped local Redis: ConnectionError chained from ConnectionRefusedError."""
    return _refused(6379, "import redis; redis.Redis(host='localhost', socket_connect_timeout=5).ping()")


@functools.cache
def psycopg2_refused_traceback() -> str:
    """psycopg2's traceback for a stopped local PostgreSQL (libpq's hint lines under the error)."""
    return _refused(5432, "import psycopg2; psycopg2.connect(host='localhost', connect_timeout=5)")


def git_env(home: Path) -> dict[str, str]:
    # C locale: git translates its messages and the patterns are English.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and "proxy" not in k.lower()}
    env.update(
        HOME=str(home), LC_ALL="C", LANG="C", GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
    )  # fmt: skip
    return env


def git(cwd: Path, env: dict[str, str], *args: str, check: bool = True) -> str:
    """``git ARGS`` in ``cwd``: its stdout and stderr; with ``check``, it must succeed."""
    res = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout + res.stderr


def git_merge_conflict(tmp: Path) -> str:
    """``git pull --no-rebase`` of a clone whose commit conflicts with the bare origin's: CONFLICT lines and all."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = git_env(tmp)
    git(tmp, env, "init", "-q", "--bare", "-b", "main", "origin.git")
    git(tmp, env, "clone", "-q", "origin.git", "a")
    a, b = tmp / "a", tmp / "b"
    (a / "settings.py").write_text("base\n")
    (a / "urls.py").write_text("base\n")
    git(a, env, "add", ".")
    git(a, env, "commit", "-qm", "base")
    git(a, env, "push", "-q", "origin", "HEAD:main")
    git(tmp, env, "clone", "-q", "origin.git", "b")
    for name in ("settings.py", "urls.py"):
        (a / name).write_text("from a\n")
        (b / name).write_text("from b\n")
    git(a, env, "commit", "-qam", "a")
    git(a, env, "push", "-q")
    git(b, env, "commit", "-qam", "b")
    # As a deploy script logs it: stdout and stderr in one stream, in the order git wrote them.
    res = subprocess.run(["git", "pull", "--no-rebase", "--no-edit"], cwd=b, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)  # fmt: skip
    assert res.returncode != 0, res.stdout
    return res.stdout


def node_stderr(script: str) -> str:
    res = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0, res.stdout
    return res.stderr


def java_stderr(tmp: Path, source: str) -> str:
    """Run one Java source file (``java Main.java``); it must end with an uncaught exception."""
    path = tmp / "Main.java"
    path.write_text(source)
    res = subprocess.run(["java", str(path)], capture_output=True, text=True, timeout=120, cwd=tmp)
    assert res.returncode != 0, res.stdout
    return res.stderr
