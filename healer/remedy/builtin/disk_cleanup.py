"""``disk_cleanup``: free space by deleting old rotated files under allowlisted roots.

Deleted is deleted: this action is not reversible, so every removed path and
its size goes into the returned state and the audit log, and a run never
removes more than ``max_delete_bytes``.

What it will not delete, and why:

* anything reached through a symlink: each root is opened from ``/`` one
  component at a time with ``O_NOFOLLOW`` (a root whose path crosses a link,
  say ``/srv/app/logs`` replaced by a link to ``/etc``, is refused), the scan
  walks from that descriptor without following links, and the unlink walks
  the same way again;
* anything on another filesystem than the root (a mount inside a log dir is
  not what the threshold is about);
* any file some process has open (by inode, see ``healer.remedy.openfiles``).
  A process that cannot be inspected (even root cannot look into some, like a
  sandbox's PID 1) is named; it does not count when there is evidence that it
  cannot reach the directory (another mount namespace). Otherwise each file
  is deleted only under a kernel write lease, which is granted only when no
  process anywhere has it open; a file someone holds is kept. Where leases
  cannot answer, the run is refused, naming those processes and what to do;
* anything that changed identity between the scan and the unlink: device,
  inode, size and mtime are compared first (a freed inode number is often
  reused at once). A file that is gone or replaced by then is counted as
  "vanished", not as a failure.
"""

from __future__ import annotations

import contextlib
import enum
import fnmatch
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import structlog
from pydantic import AfterValidator, Field, model_validator

from healer.core.enums import AuditKind, Confirm
from healer.core.errors import ActionRefused
from healer.remedy import files, openfiles
from healer.remedy.base import Action, ActionContext, Confirmation, VerifyResult, register
from healer.remedy.common import screen_name
from healer.settings.fields import AbsPath, ActionModel, ByteSize, Duration, Flag, Items, Model, Name, Number, required
from healer.settings.validation import Problem, validate_model

log = structlog.get_logger("healer.remedy.builtin.disk_cleanup")
CLEARED_SHOWN = 20  # processes listed by name in the state; the rest are counted


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


class DiskSettings(ActionModel):
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
    rel: tuple[str, ...]  # path parts below the root
    size: int
    mtime: float
    dev: int
    ino: int

    @property
    def path(self) -> Path:
        return self.root.joinpath(*self.rel)

    @property
    def identity(self) -> tuple[int, int, int, float]:
        return (self.dev, self.ino, self.size, self.mtime)


class Removed(TypedDict):
    path: str
    bytes: int


class JournalResult(TypedDict):
    rc: int
    output: str


class DiskState(TypedDict):
    roots: list[str]
    planned: list[Removed]
    removed: list[Removed]
    freed_bytes: int
    skipped: dict[str, int]
    uninspected_processes: int
    cleared_processes: list[str]
    # Uninspectable and able to see the directory: every file was deleted under a lease instead.
    hidden_processes: list[str]
    journal: JournalResult | None
    reversible: bool


class Gone(enum.Enum):
    REMOVED = "removed"
    VANISHED = "vanished"  # renamed, deleted or replaced since the scan
    HELD = "held"  # the kernel's lease says another process has it open


def _same(st: os.stat_result, c: Candidate) -> bool:
    # Size and mtime too: a freed inode number is often reused at once by a new file.
    return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size, st.st_mtime) == c.identity


def _unlink_leased(c: Candidate, dir_fd: int) -> Gone:
    """Unlink ``c`` (in ``dir_fd``) while holding a write lease on it: only if nobody else has it open."""
    name = c.rel[-1]
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except BlockingIOError:
        return Gone.HELD  # someone else holds a lease on it
    except PermissionError as exc:
        raise openfiles.LeaseUnavailable(f"cannot open it to lease it: {exc.strerror}") from None
    try:
        if not _same(os.fstat(fd), c):
            return Gone.VANISHED
        if not openfiles.sole_opener(fd):
            return Gone.HELD
        try:
            # The name must still be the leased inode, and nobody may have started opening it meanwhile.
            if not _same(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), c):
                return Gone.VANISHED
            if not openfiles.still_sole(fd):
                return Gone.HELD
            os.unlink(name, dir_fd=dir_fd)
            return Gone.REMOVED
        finally:
            openfiles.release(fd)
    finally:
        os.close(fd)


def _listed(items: Sequence[str]) -> list[str]:
    more = len(items) - CLEARED_SHOWN
    return list(items[:CLEARED_SHOWN]) + ([f"and {more} more"] if more > 0 else [])


def _refusal(hidden: Sequence[openfiles.Hidden], roots: Sequence[Path], why: str) -> str:
    """Why the open-file check cannot be met, naming the processes, and the fix that applies to this healer."""
    who = ", ".join(h.describe() for h in hidden[:5]) + (f" and {len(hidden) - 5} more" if len(hidden) > 5 else "")
    where = ", ".join(str(r) for r in roots)
    if openfiles.has_capability(openfiles.CAP_SYS_PTRACE):
        cause = "healer has CAP_SYS_PTRACE, so the kernel hides them on purpose (a sandbox's init, a security module)"
    else:
        cause = "give healer CAP_SYS_PTRACE (run it as root, or AmbientCapabilities=CAP_SYS_PTRACE in its unit)"
    lease = "" if openfiles.has_capability(openfiles.CAP_LEASE) else "; with CAP_LEASE it can ask the kernel per file"
    return (
        f"cannot tell which files are open: {who} could not be inspected and may see {where}, and the kernel"
        f" cannot say per file ({why}); {cause}{lease}; if they never hold files under {where}, set"
        " actions.disk_cleanup.require_open_check: false"
    )


@register
class DiskCleanupAction(Action[DiskSettings, DiskState]):
    name = "disk_cleanup"
    reversible = False
    param_keys = frozenset({"dir"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> DiskSettings:
        return validate_model(DiskSettings, raw, where)

    @staticmethod
    def _roots(ctx: ActionContext, settings: DiskSettings) -> list[Path]:
        wanted = ctx.params.get("dir")
        if not wanted:
            return list(settings.dirs)
        for d in settings.dirs:
            if str(d) == wanted:
                return [d]
        screen_name(wanted, "actions.disk_cleanup.dirs", "dir")
        raise ActionRefused(f"dir {wanted!r} is not in actions.disk_cleanup.dirs")

    def _target(self, ctx: ActionContext, settings: DiskSettings) -> str:
        return "disk:" + ",".join(str(r) for r in self._roots(ctx, settings))

    @staticmethod
    def _pin(roots: list[Path]) -> dict[Path, int]:
        """A descriptor per existing root, reached without links; a root that crosses a link is refused."""
        pinned: dict[Path, int] = {}
        try:
            for root in roots:
                try:
                    pinned[root] = files.open_dir(root)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # not there (any more): nothing to clean in it
        except BaseException:
            for fd in pinned.values():
                os.close(fd)
            raise
        if not pinned:
            raise ActionRefused(f"none of {[str(r) for r in roots]} is an existing directory")
        return pinned

    def _check(self, ctx: ActionContext, settings: DiskSettings) -> None:
        for fd in self._pin(self._roots(ctx, settings)).values():
            os.close(fd)

    # ------------------------------------------------------------ scan

    @staticmethod
    def _scan(settings: DiskSettings, root: Path, root_fd: int, now: float) -> Iterator[Candidate]:
        root_dev = os.fstat(root_fd).st_dev
        # fwalk works from descriptors and never follows a link, even one swapped in mid-walk.
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
            # Prune mount points: other filesystems are not what we are freeing.
            kept = []
            for d in dirnames:
                try:
                    st = os.stat(d, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode) and st.st_dev == root_dev:
                    kept.append(d)
            dirnames[:] = kept
            parts = tuple(p for p in dirpath.split("/") if p not in ("", "."))
            for name in filenames:
                rule = next((r for r in settings.rules if fnmatch.fnmatchcase(name, r.glob)), None)
                if rule is None:
                    continue
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_dev != root_dev:
                    continue  # symlinks, fifos, sockets, other filesystems
                if now - st.st_mtime < rule.older_than:
                    continue
                yield Candidate(root, (*parts, name), st.st_size, st.st_mtime, st.st_dev, st.st_ino)

    @staticmethod
    def _unlink(c: Candidate, root_fd: int, leased: bool) -> Gone:
        """Unlink ``c`` if the same inode is still there, reached from the pinned root without links.

        ``leased``: only under a write lease on it, i.e. only if no process anywhere has it open.
        Raises openfiles.LeaseUnavailable when the kernel cannot say.
        """
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.dup(root_fd)
        try:
            for part in c.rel[:-1]:
                nfd = os.open(part, flags, dir_fd=fd)
                os.close(fd)
                fd = nfd
            if not _same(os.stat(c.rel[-1], dir_fd=fd, follow_symlinks=False), c):
                return Gone.VANISHED
            if leased:
                return _unlink_leased(c, fd)
            os.unlink(c.rel[-1], dir_fd=fd)
            return Gone.REMOVED
        except FileNotFoundError:
            return Gone.VANISHED
        finally:
            os.close(fd)

    # ------------------------------------------------------------ run

    def _apply(self, ctx: ActionContext, settings: DiskSettings) -> DiskState:
        pinned = self._pin(self._roots(ctx, settings))
        try:
            return self._clean(ctx, settings, pinned)
        finally:
            for fd in pinned.values():
                os.close(fd)

    def _clean(self, ctx: ActionContext, settings: DiskSettings, pinned: dict[Path, int]) -> DiskState:
        now = ctx.clock.now()
        candidates = sorted(
            (c for root, fd in pinned.items() for c in self._scan(settings, root, fd, now)), key=lambda c: c.mtime
        )
        held = openfiles.scan({os.fstat(fd).st_dev for fd in pinned.values()})
        # "Never deletes a file that is open" holds only if every process that could hold one was seen;
        # for those that could not be, the kernel's lease answers per file.
        leased = bool(held.blocking) and settings.require_open_check
        problem = openfiles.lease_problem() if leased else ""
        if problem:
            raise ActionRefused(_refusal(held.blocking, list(pinned), problem))
        plan: list[Candidate] = []
        skipped = {"open": 0, "open_unseen": 0, "unproven": 0, "cap": 0, "vanished": 0}
        total = 0
        for c in candidates:
            if (c.dev, c.ino) in held.inodes:
                skipped["open"] += 1
                continue
            if total + c.size > settings.max_delete_bytes:
                skipped["cap"] += 1
                continue
            plan.append(c)
            total += c.size
        state = DiskState(
            roots=[str(r) for r in pinned],
            planned=[Removed(path=str(c.path), bytes=c.size) for c in plan],
            removed=[],
            freed_bytes=0,
            skipped=skipped,
            uninspected_processes=len(held.blocking) + len(held.cleared),
            cleared_processes=_listed([f"{h.describe()}: {h.evidence}" for h in held.cleared]),
            hidden_processes=_listed([h.describe() for h in held.blocking]) if leased else [],
            journal=None,
            reversible=False,
        )
        # Nothing to undo, but a crash mid-run still leaves a record of what was about to go.
        ctx.checkpoint(state)
        unproven = ""
        for c in plan:
            try:
                gone = self._unlink(c, pinned[c.root], leased)
            except openfiles.LeaseUnavailable as exc:
                skipped["unproven"] += 1
                unproven = str(exc)
                ctx.audit(AuditKind.DISK_CLEANUP_SKIP, {"path": str(c.path), "error": f"cannot prove closed: {exc}"})
                continue
            except OSError as exc:
                ctx.audit(AuditKind.DISK_CLEANUP_SKIP, {"path": str(c.path), "error": str(exc)})
                continue
            if gone is not Gone.REMOVED:
                skipped["open_unseen" if gone is Gone.HELD else "vanished"] += 1
                why = "open in a process healer cannot inspect" if gone is Gone.HELD else "vanished"
                ctx.audit(AuditKind.DISK_CLEANUP_SKIP, {"path": str(c.path), "error": why})
                continue
            state["removed"].append(Removed(path=str(c.path), bytes=c.size))
            state["freed_bytes"] += c.size
            ctx.audit(AuditKind.DELETE, {"path": str(c.path), "bytes": c.size})
        if unproven and not state["removed"]:
            raise ActionRefused(_refusal(held.blocking, list(pinned), unproven))
        if settings.journal_vacuum_size is not None:
            argv = [settings.journalctl, f"--vacuum-size={settings.journal_vacuum_size}"]
            res = ctx.run(argv, step="journal_vacuum", timeout=120)
            state["journal"] = JournalResult(rc=res.returncode, output=res.summary(200))
        log.info(
            "disk_cleaned",
            removed=len(state["removed"]),
            freed=state["freed_bytes"],
            skipped=skipped,
            uninspected=state["uninspected_processes"],
        )
        return state

    def _verify(self, ctx: ActionContext, settings: DiskSettings, state: DiskState) -> VerifyResult:
        problems, report = _free_space(settings, [Path(r) for r in state["roots"]])
        if problems:
            return VerifyResult(False, "; ".join(problems))
        return VerifyResult(True, "; ".join(report))

    def _confirm(self, ctx: ActionContext, settings: DiskSettings) -> Confirmation:
        """CONFIRMED when a configured dir's filesystem has less free space than the bound verify wants."""
        problems, report = _free_space(settings, self._roots(ctx, settings))
        if problems:
            return Confirmation(Confirm.CONFIRMED, "; ".join(problems))
        if not report:
            return Confirmation(Confirm.UNKNOWN, "none of the configured dirs exists")
        return Confirmation(Confirm.REFUTED, "; ".join(report) + ": above the free-space bound")


def _free_space(settings: DiskSettings, roots: list[Path]) -> tuple[list[str], list[str]]:
    """(the roots below the free-space bound, what each existing root has free), measured on its descriptor."""
    problems, report = [], []
    for root in roots:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, ActionRefused):
            fd = files.open_dir(root)
            try:
                vfs = os.fstatvfs(fd)
            finally:
                os.close(fd)
            free, size = vfs.f_bavail * vfs.f_frsize, vfs.f_blocks * vfs.f_frsize
            pct = 100.0 * free / size if size else 0.0
            report.append(f"{root}: {free} bytes free ({pct:.1f}%)")
            if settings.min_free_percent is not None and pct < settings.min_free_percent:
                problems.append(f"{root} {pct:.1f}% free < {settings.min_free_percent}%")
            if settings.min_free_bytes is not None and free < settings.min_free_bytes:
                problems.append(f"{root} {free} bytes free < {settings.min_free_bytes}")
    return problems, report
