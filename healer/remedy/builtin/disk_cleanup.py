"""``disk_cleanup``: free space by deleting old rotated files under allowlisted roots.

Deleted is deleted: this action is not reversible, so every removed path and
its size goes into the returned state and the audit log, and a run never
removes more than ``max_delete_bytes``.

What it will not delete, and why:

* anything reached through a symlink (links are skipped, directories are not
  followed, and each path's real location must still be inside its root), so
  a link planted in a log directory cannot aim the cleanup at ``/etc``;
* anything on another filesystem than the root (a mount inside a log dir is
  not what the threshold is about);
* any file some process has open: deleting an open file frees nothing until
  it is closed, and the writer would go on logging into a ghost;
* anything that changed identity between the scan and the unlink: the final
  step reopens each directory without following links and compares inode and
  device before unlinking.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import psutil
import structlog
from pydantic import AfterValidator, Field, model_validator

from healer.core.errors import ActionRefused
from healer.remedy.base import JSON, Action, ActionContext, VerifyResult, register
from healer.remedy.common import audit_proc
from healer.settings.fields import AbsPath, ByteSize, Duration, Flag, Items, Model, Name, Number, required
from healer.settings.validation import Problem, validate_model

log = structlog.get_logger("healer.remedy.builtin.disk_cleanup")


def _file_glob(raw: str) -> str:
    if "/" in raw:
        raise ValueError("matches file names only; no '/'")
    return raw


def _cleanable(raw: Path) -> Path:
    if raw == Path("/") or ".." in raw.parts:
        raise ValueError(f"{str(raw)!r} must be an absolute path below / (not / itself)")
    return raw


class Rule(Model):
    glob: Annotated[Name, AfterValidator(_file_glob)]
    older_than: Duration  # required: healer never deletes fresh files


class DiskSettings(Model):
    dirs: Annotated[
        Items[Annotated[AbsPath, AfterValidator(_cleanable)]],
        required("list the directories healer may clean, e.g. [/var/log/myapp]"),
    ]
    rules: Annotated[Items[Rule], required("list rules like {glob: '*.log.[0-9]*', older_than: 7d}")]
    max_delete_bytes: ByteSize  # required: a cap per run, e.g. 5G
    min_free_percent: Annotated[Number, Field(gt=0, lt=100)] | None = None
    min_free_bytes: ByteSize | None = None
    journal_vacuum_size: ByteSize | None = None
    journalctl: Name = "journalctl"
    require_open_check: Flag = True

    @model_validator(mode="after")
    def _verify_threshold(self) -> DiskSettings:
        if self.min_free_percent is None and self.min_free_bytes is None:
            raise Problem("min_free_percent", "set min_free_percent and/or min_free_bytes (the verify threshold)")
        return self


@dataclass(frozen=True)
class Candidate:
    root: Path
    path: Path
    size: int
    mtime: float
    dev: int
    ino: int


def open_paths() -> tuple[set[str], int]:
    """Every file any process has open, and how many processes we could not inspect."""
    paths: set[str] = set()
    denied = 0
    for proc in psutil.process_iter():
        try:
            paths.update(f.path for f in proc.open_files())
        except psutil.AccessDenied:
            denied += 1
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # gone, or a zombie: it holds no files open
    return paths, denied


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@register
class DiskCleanupAction(Action):
    name = "disk_cleanup"
    needs_root = True  # /var/log and journal vacuum are root's; a user-owned dir works without
    reversible = False
    param_keys = frozenset({"dir"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> DiskSettings:
        return validate_model(DiskSettings, raw, where)

    def _roots(self, ctx: ActionContext) -> tuple[DiskSettings, list[Path]]:
        settings: DiskSettings | None = ctx.settings
        if settings is None:
            raise ActionRefused("disk_cleanup has no settings (actions.disk_cleanup)")
        wanted = ctx.params.get("dir")
        if not wanted:
            return settings, list(settings.dirs)
        for d in settings.dirs:
            if str(d) == wanted:
                return settings, [d]
        raise ActionRefused(f"dir {wanted!r} is not in actions.disk_cleanup.dirs")

    def target(self, ctx: ActionContext) -> str:
        try:
            _, roots = self._roots(ctx)
        except ActionRefused:
            return "disk_cleanup:?"
        return "disk:" + ",".join(str(r) for r in roots)

    def check(self, ctx: ActionContext) -> None:
        _, roots = self._roots(ctx)
        if not any(r.is_dir() and not r.is_symlink() for r in roots):
            raise ActionRefused(f"none of {[str(r) for r in roots]} is an existing directory (symlinks refused)")

    # ------------------------------------------------------------ scan

    def _scan(self, settings: DiskSettings, roots: list[Path], now: float) -> Iterator[Candidate]:
        for root in roots:
            if root.is_symlink() or not root.is_dir():
                continue
            real_root = os.path.realpath(root)
            root_dev = os.lstat(root).st_dev
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                # Prune mount points: other filesystems are not what we are freeing.
                kept = []
                for d in dirnames:
                    try:
                        st = os.lstat(os.path.join(dirpath, d))
                    except OSError:
                        continue
                    if stat.S_ISDIR(st.st_mode) and st.st_dev == root_dev:
                        kept.append(d)
                dirnames[:] = kept
                for name in filenames:
                    rule = next((r for r in settings.rules if fnmatch.fnmatchcase(name, r.glob)), None)
                    if rule is None:
                        continue
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(path)
                    except OSError:
                        continue
                    if not stat.S_ISREG(st.st_mode) or st.st_dev != root_dev:
                        continue  # symlinks, fifos, sockets, other filesystems
                    if not _inside(os.path.realpath(path), real_root):
                        continue
                    if now - st.st_mtime < rule.older_than:
                        continue
                    yield Candidate(root, Path(path), st.st_size, st.st_mtime, st.st_dev, st.st_ino)

    @staticmethod
    def _unlink(c: Candidate) -> bool:
        """Unlink ``c`` only if the same inode is still there, reached from the root without links."""
        rel = c.path.relative_to(c.root)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        fd = os.open(c.root, flags)
        try:
            for part in rel.parts[:-1]:
                nfd = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = nfd
            st = os.stat(rel.name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (c.dev, c.ino):
                return False
            os.unlink(rel.name, dir_fd=fd)
            return True
        finally:
            os.close(fd)

    # ------------------------------------------------------------ run

    def apply(self, ctx: ActionContext) -> JSON:
        self.check(ctx)
        settings, roots = self._roots(ctx)
        candidates = sorted(self._scan(settings, roots, ctx.clock.now()), key=lambda c: c.mtime)
        busy, denied = open_paths()
        if denied and settings.require_open_check:
            # "Never deletes a file that is open" only holds if every process could be looked at.
            raise ActionRefused(
                f"cannot tell which files are open: {denied} processes could not be inspected; run healer"
                " with CAP_SYS_PTRACE (or as root), or set actions.disk_cleanup.require_open_check: false"
            )
        plan: list[Candidate] = []
        skipped = {"open": 0, "cap": 0}
        total = 0
        for c in candidates:
            if str(c.path) in busy or os.path.realpath(c.path) in busy:
                skipped["open"] += 1
                continue
            if total + c.size > settings.max_delete_bytes:
                skipped["cap"] += 1
                continue
            plan.append(c)
            total += c.size
        state: JSON = {
            "roots": [str(r) for r in roots],
            "planned": [{"path": str(c.path), "bytes": c.size} for c in plan],
            "removed": [],
            "freed_bytes": 0,
            "skipped": skipped,
            "uninspected_processes": denied,
            "journal": None,
            "reversible": False,
        }
        # Nothing to undo, but a crash mid-run still leaves a record of what was about to go.
        ctx.checkpoint(state)
        for c in plan:
            try:
                gone = self._unlink(c)
            except OSError as exc:
                ctx.audit("disk_cleanup_skip", {"path": str(c.path), "error": str(exc)})
                continue
            if gone:
                state["removed"].append({"path": str(c.path), "bytes": c.size})
                state["freed_bytes"] += c.size
                ctx.audit("delete", {"path": str(c.path), "bytes": c.size})
        if settings.journal_vacuum_size is not None:
            res = ctx.runner.run([settings.journalctl, f"--vacuum-size={settings.journal_vacuum_size}"], timeout=120)
            audit_proc(ctx, res, "journal_vacuum")
            state["journal"] = {"rc": res.returncode, "output": res.summary(200)}
        log.info(
            "disk_cleaned",
            removed=len(state["removed"]),
            freed=state["freed_bytes"],
            skipped=skipped,
            uninspected=denied,
        )
        return state

    def verify(self, ctx: ActionContext, state: JSON) -> VerifyResult:
        settings: DiskSettings = ctx.settings
        problems, report = [], []
        for root in state["roots"]:
            with contextlib.suppress(FileNotFoundError):
                usage = shutil.disk_usage(root)
                pct = 100.0 * usage.free / usage.total if usage.total else 0.0
                report.append(f"{root}: {usage.free} bytes free ({pct:.1f}%)")
                if settings.min_free_percent is not None and pct < settings.min_free_percent:
                    problems.append(f"{root} {pct:.1f}% free < {settings.min_free_percent}%")
                if settings.min_free_bytes is not None and usage.free < settings.min_free_bytes:
                    problems.append(f"{root} {usage.free} bytes free < {settings.min_free_bytes}")
        if problems:
            return VerifyResult(False, "; ".join(problems))
        return VerifyResult(True, "; ".join(report))
