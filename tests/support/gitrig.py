"""A real bare remote with two clones: ``dev`` pushes upstream changes, ``server`` is what healer syncs."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

IDENT = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.invalid",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **IDENT}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()


@dataclass
class Repos:
    remote: Path
    dev: Path  # where upstream changes come from
    server: Path  # the checkout healer keeps in sync

    def push_change(self, name: str, content: str, msg: str = "upstream change") -> str:
        path = self.dev / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        git(self.dev, "add", name)
        git(self.dev, "commit", "-q", "-m", msg)
        git(self.dev, "push", "-q", "origin", "main")
        return git(self.dev, "rev-parse", "HEAD")

    def head(self) -> str:
        return git(self.server, "rev-parse", "HEAD")


def make_repos(tmp_path: Path) -> Repos:
    """Call with HOME pointed at an empty directory: the action's git gets HOME, and no GIT_* from us."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(remote))
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", str(remote), str(dev))
    git(dev, "checkout", "-q", "-b", "main")
    (dev / "app.py").write_text("VERSION = 1\n")
    (dev / "config.txt").write_text("a\nb\nc\n")
    git(dev, "add", ".")
    git(dev, "commit", "-q", "-m", "initial")
    git(dev, "push", "-q", "-u", "origin", "main")
    server = tmp_path / "server"
    git(tmp_path, "clone", "-q", str(remote), str(server))
    return Repos(remote, dev, server)
