"""``git_sync``: bring an allowlisted checkout up to its upstream without ever losing work.

The order is what makes it safe: record HEAD, stash local edits to tracked
files under a message naming the incident, then fetch and merge
``--ff-only`` (or merge/rebase if the repo is configured for it). If the
merge or rebase fails, abort it and hard-reset to the recorded HEAD, so the
tree is exactly as the last commit left it and the stash still holds the
edits. Stashes are never dropped or popped: a human decides what to do with
local edits on a server; the report says which stash to look at.

Fetch and merge run as two steps (what ``git pull`` does) so the report can
tell "the network failed" from "the branches diverged", and verify compares
HEAD against the very ref that was merged.

Whoever can write the checkout can write its hooks and its ``.git/config``,
so every git command, reads included, goes through ``ctx.run`` (the one
``Runner``): an allowlisted environment (no bot token, no webhook secret, no
``GIT_*`` from healer's environment such as ``GIT_TRACE``), a timeout, an
audit record, and ``-c core.hooksPath=/dev/null -c core.fsmonitor=false``
so no hook and no fsmonitor script runs. GitPython is not used: it starts
git with the daemon's whole environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import structlog
from pydantic import AfterValidator, BeforeValidator

from healer.core.enums import AuditKind, Confirm
from healer.core.errors import ActionError, ActionRefused
from healer.core.proc import ProcResult
from healer.remedy.base import Action, ActionContext, Confirmation, VerifyResult, probe_timeout, register
from healer.remedy.common import screen_name
from healer.remedy.paths import DEFAULT_PROTECTED, PathSet
from healer.settings.fields import AbsPath, ActionModel, Items, Model, Name, Timeout, name_entries, required
from healer.settings.validation import validate_model

log = structlog.get_logger("healer.remedy.builtin.git_sync")

MARKER_SCAN_LIMIT = 2 * 1024 * 1024
# Before every subcommand: no hook, no fsmonitor script, and the file:// transport
# only where a user asked for it (a remote URL in the checkout's own config is not one).
GIT = (
    "git",
    *("-c", "core.hooksPath=/dev/null"),
    *("-c", "core.fsmonitor=false"),
    *("-c", "protocol.file.allow=user"),
)
IN_PROGRESS = (("MERGE_HEAD", "merge"), ("rebase-merge", "rebase"), ("rebase-apply", "rebase/am"))


def _ref_name(value: str) -> str:
    # Also rules out anything git could read as an option.
    if value.startswith("-") or ".." in value or any(c in value for c in " ~^:?*[\\"):
        raise ValueError(f"{value!r} is not a valid remote/branch name")
    return value


RefName = Annotated[Name, AfterValidator(_ref_name)]


class RepoSpec(Model):
    key: str = ""  # the name under repos; set from the mapping key, never written in the file
    path: AbsPath
    remote: RefName = "origin"
    branch: RefName | None = None
    strategy: Literal["ff-only", "merge", "rebase"] = "ff-only"
    # .gitignore-style lines; a pull touching one waits for a human. None: DEFAULT_PROTECTED; [] protects nothing.
    protected: Items[Name] | None = None

    @property
    def protected_paths(self) -> PathSet:
        return PathSet(DEFAULT_PROTECTED if self.protected is None else self.protected)


class GitSyncSettings(ActionModel):
    # Each repo learns its key; ``path`` defaults to the key (``/srv/app: {}``).
    repos: Annotated[
        Mapping[str, RepoSpec],
        BeforeValidator(lambda raw: name_entries(raw, "repos", lambda key: {"path": key})),
        required("list the repos healer may sync: {name: {path: /srv/app}}"),
    ]
    timeout: Timeout = 120.0


class GitSyncState(TypedDict):
    path: str
    branch: str
    upstream: str
    strategy: str
    old_head: str
    stash: str | None
    stash_message: str
    timeout: float
    new_head: NotRequired[str]


class GitFailed(ActionError):
    """A git command exited non-zero; ``stderr`` is its (bounded) error output."""

    def __init__(self, args: tuple[str, ...], res: ProcResult) -> None:
        self.stderr = res.stderr.strip() or res.stdout.strip()
        super().__init__(f"git {' '.join(args)} exited {res.returncode}: {self.stderr[-300:]}")


class Git:
    """One checkout's git, every command through the audited ``Runner`` with the hardened options."""

    def __init__(self, ctx: ActionContext, path: str, timeout: float) -> None:
        self.ctx = ctx
        self.path = path
        self.timeout = timeout
        self.env = {"GIT_TERMINAL_PROMPT": "0"}

    def run(self, *args: str) -> ProcResult:
        return self.ctx.run([*GIT, *args], step=f"git {args[0]}", timeout=self.timeout, cwd=self.path, env=self.env)

    def out(self, *args: str) -> str:
        res = self.run(*args)
        if not res.ok:
            raise GitFailed(args, res)
        return res.stdout.strip()

    def ok(self, *args: str) -> bool:
        return self.run(*args).ok

    def git_dir(self) -> Path | None:
        """The checkout's git dir, or None when ``path`` is not the top of a work tree."""
        res = self.run("rev-parse", "--absolute-git-dir", "--show-toplevel")
        lines = res.stdout.strip().splitlines()
        if not res.ok or len(lines) != 2 or os.path.realpath(lines[1]) != os.path.realpath(self.path):
            return None
        return Path(lines[0])

    def in_progress(self) -> str | None:
        gd = self.git_dir()
        for name, what in IN_PROGRESS:
            if gd is not None and (gd / name).exists():
                return what
        return None

    def branch(self) -> str | None:
        """The checked-out branch, None when HEAD is detached."""
        res = self.run("symbolic-ref", "-q", "--short", "HEAD")
        return res.stdout.strip() if res.ok else None

    def head(self) -> str:
        return self.out("rev-parse", "--verify", "HEAD^{commit}")

    def dirty(self) -> bool:
        """Tracked files changed. Untracked ones are never stashed: on a server they are the app's own
        (a ``.env``, logs, uploads not in .gitignore), and ``stash -u`` would take them away from the
        running app. Left in place they are safe: a merge that would overwrite one refuses before it
        changes anything (the fix fails and is rolled back), and ``reset --hard`` leaves them alone."""
        return bool(self.out("status", "--porcelain", "--untracked-files=no"))

    def unmerged(self) -> bool:
        return bool(self.out("ls-files", "--unmerged"))

    def with_identity(self) -> None:
        """A committer identity only where the repo has none (stash and merge need one)."""
        if not (self.ok("var", "GIT_COMMITTER_IDENT") and self.ok("var", "GIT_AUTHOR_IDENT")):
            self.env.update(
                GIT_COMMITTER_NAME="healer",
                GIT_COMMITTER_EMAIL="healer@localhost",
                GIT_AUTHOR_NAME="healer",
                GIT_AUTHOR_EMAIL="healer@localhost",
            )


@register
class GitSyncAction(Action[GitSyncSettings, GitSyncState]):
    name = "git_sync"
    reversible = True
    param_keys = frozenset({"repo"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> GitSyncSettings:
        return validate_model(GitSyncSettings, raw, where)

    # ------------------------------------------------------------ lookups

    @staticmethod
    def _spec(ctx: ActionContext, settings: GitSyncSettings) -> RepoSpec:
        wanted = ctx.params.get("repo", "")
        if not wanted and len(settings.repos) == 1:
            return next(iter(settings.repos.values()))
        if wanted in settings.repos:
            return settings.repos[wanted]
        for spec in settings.repos.values():
            if str(spec.path) == wanted:
                return spec
        screen_name(wanted, "actions.git_sync.repos", "repo")
        raise ActionRefused(f"repo {wanted!r} is not in actions.git_sync.repos")

    def _target(self, ctx: ActionContext, settings: GitSyncSettings) -> str:
        return f"repo:{self._spec(ctx, settings).path}"

    @staticmethod
    def _branch(git: Git, spec: RepoSpec) -> str:
        current = git.branch()
        if current is None:
            raise ActionRefused(f"{spec.path}: HEAD is detached; healer only syncs a checked-out branch")
        if spec.branch is not None and current != spec.branch:
            raise ActionRefused(
                f"{spec.path}: on branch {current!r}, configured for {spec.branch!r}; healer never switches branches"
            )
        return current

    def _check(self, ctx: ActionContext, settings: GitSyncSettings) -> None:
        spec = self._spec(ctx, settings)
        git = Git(ctx, str(spec.path), settings.timeout)
        if git.git_dir() is None:
            raise ActionRefused(f"{spec.path} is not a git checkout")
        busy = git.in_progress()
        if busy:
            raise ActionRefused(f"{spec.path}: a {busy} is already in progress; a human must finish it first")
        if git.unmerged():
            raise ActionRefused(f"{spec.path}: has unmerged paths; resolve them first")
        self._branch(git, spec)
        if not git.ok("rev-parse", "--verify", "-q", "HEAD^{commit}"):
            raise ActionRefused(f"{spec.path}: the branch has no commit yet")
        if spec.remote not in git.out("remote").splitlines():
            raise ActionRefused(f"{spec.path}: no remote named {spec.remote!r}")

    def review(self, ctx: ActionContext) -> str:
        """Fetch, then list what the pull would change (``git diff --name-only HEAD...upstream``).

        Three dots: the changes upstream made since the merge base, which is
        what a merge or rebase brings in (for ff-only it is the same as two).
        The fix asks a human when one of them is a protected path; when the
        list cannot be had, it asks too, saying why.
        """
        settings = self.configured(ctx)
        spec = self._spec(ctx, settings)
        protected = spec.protected_paths
        if not protected.lines:
            return ""
        git = Git(ctx, str(spec.path), settings.timeout)
        try:
            branch = git.branch()
            if branch is None or git.git_dir() is None or spec.remote not in git.out("remote").splitlines():
                return ""  # the step's own check refuses it, with the reason
            git.out("fetch", spec.remote)
            changed = [n for n in git.out("diff", "--name-only", f"HEAD...{spec.remote}/{branch}").splitlines() if n]
        except GitFailed as exc:
            return f"git_sync {spec.path}: cannot tell which paths the pull changes ({exc.stderr[-200:]})"
        touched = protected.touched(changed)
        if not touched:
            return ""
        more = f" and {len(touched) - 10} more" if len(touched) > 10 else ""
        return f"git_sync {spec.path}: the pull changes protected paths: " + ", ".join(touched[:10]) + more

    # ------------------------------------------------------------ run

    def _apply(self, ctx: ActionContext, settings: GitSyncSettings) -> GitSyncState:
        spec = self._spec(ctx, settings)
        git = Git(ctx, str(spec.path), settings.timeout)
        branch = self._branch(git, spec)
        state = GitSyncState(
            path=str(spec.path),
            branch=branch,
            upstream=f"{spec.remote}/{branch}",
            strategy=spec.strategy,
            old_head=git.head(),
            stash=None,
            stash_message=f"healer incident {ctx.incident_id}",
            timeout=settings.timeout,
        )
        ctx.checkpoint(state)
        git.with_identity()
        if git.dirty():
            git.out("stash", "push", "-m", state["stash_message"])
            state["stash"] = git.out("rev-parse", "refs/stash")
            ctx.checkpoint(state)
            log.info("stashed", path=state["path"], stash=state["stash"], message=state["stash_message"])
        try:
            git.out("fetch", spec.remote)
        except GitFailed as exc:
            raise ActionError(self._report(state, "fetch", exc)) from None
        try:
            if spec.strategy == "ff-only":
                git.out("merge", "--ff-only", state["upstream"])
            elif spec.strategy == "merge":
                git.out("merge", "--no-edit", state["upstream"])
            else:
                git.out("rebase", state["upstream"])
        except GitFailed as exc:
            self._roll_back(git, state["old_head"])
            raise ActionError(self._report(state, spec.strategy, exc)) from None
        state["new_head"] = git.head()
        log.info("synced", path=state["path"], old=state["old_head"][:12], new=state["new_head"][:12])
        return state

    @staticmethod
    def _report(state: GitSyncState, step: str, exc: GitFailed) -> str:
        err = " ".join(exc.stderr.split())[-300:]
        msg = f"git_sync {state['path']}: {step} failed ({err}); HEAD is back at {state['old_head'][:12]}"
        stash = state.get("stash")
        if stash:
            msg += (
                f"; local changes are kept in stash {stash[:12]} ({state['stash_message']!r}),"
                f" restore with: git stash apply {stash[:12]}"
            )
        return msg

    @staticmethod
    def _roll_back(git: Git, old_head: str) -> None:
        busy = git.in_progress()
        if busy == "merge":
            git.out("merge", "--abort")
        elif busy is not None:
            git.out("rebase", "--abort")
        git.out("reset", "--hard", old_head)

    def _verify(self, ctx: ActionContext, settings: GitSyncSettings, state: GitSyncState) -> VerifyResult:
        git = Git(ctx, state["path"], settings.timeout)
        head = git.head()
        upstream = git.out("rev-parse", "--verify", f"{state['upstream']}^{{commit}}")
        if git.unmerged():
            return VerifyResult(False, "unmerged paths remain")
        if state["strategy"] == "ff-only":
            if head != upstream:
                return VerifyResult(False, f"HEAD {head[:12]} != {state['upstream']} {upstream[:12]}")
        elif not git.ok("merge-base", "--is-ancestor", upstream, head):
            return VerifyResult(False, f"{state['upstream']} is not contained in HEAD")
        marked = self._conflict_markers(git, state["old_head"])
        if marked:
            return VerifyResult(False, f"conflict markers in {', '.join(marked[:5])}")
        # The positive probe's other half: nothing tracked is left modified (local edits went to the stash).
        changed = _changed(git)
        if changed:
            return VerifyResult(False, f"the tree is not clean: {changed}")
        detail = f"HEAD {head[:12]} matches {state['upstream']}"
        stash = state.get("stash")
        if stash:
            detail += f"; local changes kept in stash {stash[:12]}"
        return VerifyResult(True, detail)

    def _confirm(self, ctx: ActionContext, settings: GitSyncSettings) -> Confirmation:
        """STUCK when a merge or rebase stopped half-way; CONFIRMED when dirty or behind; REFUTED when equal.

        A conflicted or dirty tree is a fault to look at whatever the
        upstream says. A conflicted one is for a human (the fix's own check
        refuses it); a dirty one the fix stashes.
        """
        spec = self._spec(ctx, settings)
        git = Git(ctx, str(spec.path), probe_timeout(settings.timeout))
        if git.git_dir() is None:
            return Confirmation(Confirm.UNKNOWN, f"{spec.path} is not a git checkout")
        # A merge or rebase stopped half-way is a fault this action can only refuse (``_check``):
        # STUCK, so the engine hands it to a human at once instead of asking to approve a refusal.
        busy = git.in_progress()
        conflicted = _conflicted(git)
        if busy is not None:
            files = f" with conflicts in {conflicted}" if conflicted else ""
            return Confirmation(
                Confirm.STUCK, f"{spec.path}: a {busy} is in progress{files}; git_sync never resolves it"
            )
        if conflicted:
            detail = f"{spec.path}: unmerged paths {conflicted}; git_sync never resolves them"
            return Confirmation(Confirm.STUCK, detail)
        changed = _changed(git)
        if changed:
            return Confirmation(Confirm.CONFIRMED, f"{spec.path}: local changes to {changed}")
        branch = git.branch()
        if branch is None:
            return Confirmation(Confirm.UNKNOWN, f"{spec.path}: HEAD is detached")
        upstream = f"{spec.remote}/{branch}"
        git.out("fetch", spec.remote)
        head = git.head()
        behind = int(git.out("rev-list", "--count", f"HEAD..{upstream}"))
        ahead = int(git.out("rev-list", "--count", f"{upstream}..HEAD"))
        if behind:
            diverged = f" and {ahead} ahead (diverged)" if ahead else ""
            return Confirmation(
                Confirm.CONFIRMED, f"{spec.path}: HEAD is {behind} commit(s) behind {upstream}{diverged}"
            )
        if ahead:
            return Confirmation(
                Confirm.REFUTED, f"{spec.path}: HEAD is {ahead} commit(s) ahead of {upstream}; nothing to pull"
            )
        return Confirmation(Confirm.REFUTED, f"{spec.path}: HEAD {head[:12]} equals {upstream} and the tree is clean")

    @staticmethod
    def _conflict_markers(git: Git, since: str) -> list[str]:
        root = Path(git.path)
        names = [n for n in git.out("diff", "--name-only", since, "HEAD").splitlines() if n]
        bad = []
        for name in names:
            path = root / name
            try:
                if path.is_symlink() or not path.is_file() or path.stat().st_size > MARKER_SCAN_LIMIT:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            for line in data.splitlines():
                if line.startswith((b"<<<<<<< ", b">>>>>>> ")) or line in (b"<<<<<<<", b">>>>>>>"):
                    bad.append(name)
                    break
        return bad

    def undo(self, ctx: ActionContext, state: GitSyncState) -> None:
        """Hard-reset to the recorded HEAD; anything edited since apply is stashed first, never lost."""
        git = Git(ctx, state["path"], float(state.get("timeout", 120.0)))
        if git.branch() != state["branch"]:
            raise ActionError(f"{state['path']}: no longer on {state['branch']!r}; undo by hand")
        git.with_identity()
        if git.in_progress() is not None:
            self._roll_back(git, state["old_head"])
        if git.dirty():
            git.out("stash", "push", "-m", f"healer incident {ctx.incident_id} before undo")
        git.out("reset", "--hard", state["old_head"])
        ctx.audit(
            AuditKind.GIT_SYNC_UNDO,
            {"path": state["path"], "head": state["old_head"], "stash_kept": state.get("stash")},
        )
        log.info("git_sync_undone", path=state["path"], head=state["old_head"][:12], stash=state.get("stash"))


def _conflicted(git: Git) -> str:
    """The unmerged (conflicted) paths, up to five, or "" when there are none."""
    names = list(dict.fromkeys(n for n in git.out("diff", "--name-only", "--diff-filter=U").splitlines() if n))
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return ", ".join(names[:5]) + more


def _changed(git: Git) -> str:
    """The tracked paths left modified, up to five, or "" for a clean tree."""
    dirty = git.out("status", "--porcelain", "--untracked-files=no").splitlines()
    return ", ".join(d.split(maxsplit=1)[-1] for d in dirty[:5])  # "XY path", XY may be " M"


__all__ = ["GitSyncAction", "GitSyncSettings"]
