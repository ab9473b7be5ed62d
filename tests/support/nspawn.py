"""A Debian root booted under systemd-nspawn: a real systemd (PID 1 of its own), journald, D-Bus, polkit.

The root is built once with debootstrap and kept under ``build/systemd-ci/``
(git-ignored) for as long as the checkout lives: a CI run is a fresh clone, so
it builds once per run. Each boot is ``--ephemeral``: nspawn boots a throwaway
copy, so a test session never sees what an earlier one left behind, and the
cached root stays pristine.

The host may have no systemd as PID 1 (CI runs in a container), hence
``--register=no --keep-unit``: no machined to register with, no scope to create.
Commands run inside through ``nsenter`` into the container init's namespaces,
with a clean environment (the host's variables must not leak into systemctl's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUITE = "bookworm"
MIRROR = os.environ.get("HEALER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the root needs beyond minbase: systemd as init, D-Bus and logind (polkit
# asks logind about sessions), polkitd for the restart rule, python3-venv for
# install.sh, sudo for the sudoers alternative.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "libpam-systemd", "polkitd", "python3", "python3-venv", "sudo")
INNER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}
BOOT_TIMEOUT = 120.0


def missing_prerequisites() -> str | None:
    """Why this host cannot run the tier, or None if it can."""
    if os.geteuid() != 0:
        return "needs root (debootstrap and systemd-nspawn)"
    for tool, package in (
        ("debootstrap", "debootstrap"),
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian package {package}; .ci/apt-packages.txt lists it)"
    return None


def mirror_unreachable(cached: bool) -> str | None:
    if cached:
        return None
    url = f"{MIRROR}/dists/{SUITE}/Release"
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            resp.read(64)
    except (urllib.error.URLError, OSError) as exc:
        return f"no network to the Debian mirror ({url}: {exc})"
    return None


def _stamp() -> str:
    return json.dumps({"suite": SUITE, "packages": sorted(PACKAGES)})


def root_is_cached(cache: Path) -> bool:
    stamp = cache / "root.stamp"
    return (cache / "root").is_dir() and stamp.is_file() and stamp.read_text() == _stamp()


def ensure_root(cache: Path, log: Path) -> Path:
    """The cached root, built first if absent or built from another package list."""
    root = cache / "root"
    if root_is_cached(cache):
        return root
    tmp = cache / "root.tmp"
    for stale in (tmp, root):
        if stale.exists():
            shutil.rmtree(stale)
    cache.mkdir(parents=True, exist_ok=True)
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp), MIRROR]
    with log.open("w") as out:
        res = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"debootstrap failed (rc {res.returncode}); see {log}")
    tmp.rename(root)
    (cache / "root.stamp").write_text(_stamp())
    return root


@dataclass
class Container:
    """One booted container; ``run`` executes inside it as root."""

    root: Path
    binds: Mapping[Path, str]
    console: Path
    proc: subprocess.Popen[bytes] | None = None
    pid: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def boot(self) -> None:
        argv = ["systemd-nspawn", "-D", str(self.root), "--register=no", "--keep-unit", "--ephemeral"]
        argv += ["--console=passive", "--machine=healer-ci", "-b"]
        argv[1:1] = [f"--bind-ro={src}:{dst}" for src, dst in self.binds.items()]
        started = time.monotonic()
        with self.console.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self._init_pid(started + BOOT_TIMEOUT)
        state, deadline = "", started + BOOT_TIMEOUT
        # Until PID 1 has its private bus up, systemctl fails to connect and prints nothing.
        while state not in ("running", "degraded"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"container did not come up: {state!r}; console in {self.console}")
            res = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=BOOT_TIMEOUT)
            state = res.stdout.strip() or res.stderr.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.2)
        self.timings["boot"] = time.monotonic() - started

    def _init_pid(self, deadline: float) -> int:
        """The container's PID 1, as the host sees it: nspawn's child once it has exec'ed systemd."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.proc.returncode}; console in {self.console}")
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            for pid in children.read_text().split():
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
                except FileNotFoundError:
                    continue
            time.sleep(0.1)
        raise RuntimeError(f"no systemd in the container after {BOOT_TIMEOUT:g}s; console in {self.console}")

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 120.0, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the container, as root or as ``user``; stdout and stderr captured as text."""
        inner = list(argv) if user is None else ["runuser", "-u", user, "--", *argv]
        env = [f"{k}={v}" for k, v in INNER_ENV.items()]
        full = ["nsenter", "-t", str(self.pid), "-a", "env", "-i", *env, *inner]
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(inner)}: rc {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res

    def sh(self, script: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.run(["bash", "-euo", "pipefail", "-c", script], **kw)  # type: ignore[arg-type]

    def path(self, inner: str) -> Path:
        """A path inside the container, reachable from the host through its init's root."""
        return Path(f"/proc/{self.pid}/root") / inner.lstrip("/")

    def write(self, inner: str, text: str, mode: int = 0o644, owner: str = "root:root") -> None:
        """Write a file inside the container in one rename, as an editor saving it would."""
        target = self.path(inner)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        self.run(["chown", owner, f"{inner.rsplit('/', 1)[0]}/.{target.name}.tmp"])
        tmp.rename(target)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        res = self.run(["systemctl", "show", unit, *(f"-p{p}" for p in props)])
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)

    def journal(self, unit: str, *extra: str) -> list[dict[str, object]]:
        """healer's own log records (structlog JSON in MESSAGE) for ``unit``."""
        res = self.run(["journalctl", "--no-pager", "-q", "-u", unit, "-o", "cat", *extra])
        out = []
        for line in res.stdout.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def poweroff(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.run(["systemctl", "poweroff"], check=False, timeout=30)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None
