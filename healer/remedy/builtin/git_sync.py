"""``git_sync``: bring an allowlisted checkout up to its upstream without ever losing work.

The order is what makes it safe: record HEAD, stash local edits (including
untracked files) under a message naming the incident, then fetch and merge
``--ff-only`` (or merge/rebase if the repo is configured for it). If the
merge or rebase fails, abort it and hard-reset to the recorded HEAD, so the
tree is exactly as the last commit left it and the stash still holds the
edits. Stashes are never dropped or popped: a human decides what to do with
local edits on a server; the report says which stash to look at.

Fetch and merge run as two steps (what ``git pull`` does) so the report can
tell "the network failed" from "the branches diverged", and verify compares
HEAD against the very ref that was merged.

GitPython starts its own ``git`` processes, so these do not go through
``ctx.runner``; every git command is audited here instead, and the
network-touching fetch has a kill timeout.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from healer.core.lazy import LazyModule

if TYPE_CHECKING:
    import git
else:
    # GitPython costs ~0.3 s to import; only a git_sync fix needs it, not every CLI call.
    git = LazyModule("git")
import structlog
from pydantic import AfterValidator, BeforeValidator

from healer.core.errors import ActionError, ActionRefused
from healer.remedy.base import JSON, Action, ActionContext, VerifyResult, register
from healer.settings.fields import AbsPath, Model, Name, Timeout, name_entries, required
from healer.settings.validation import validate_model

log = structlog.get_logger("healer.remedy.builtin.git_sync")

MARKER_SCAN_LIMIT = 2 * 1024 * 1024


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


class GitSyncSettings(Model):
    # Each repo learns its key; ``path`` defaults to the key (``/srv/app: {}``).
    repos: Annotated[
        Mapping[str, RepoSpec],
        BeforeValidator(lambda raw: name_entries(raw, "repos", lambda key: {"path": key})),
        required("list the repos healer may sync: {name: {path: /srv/app}}"),
    ]
    timeout: Timeout = 120.0


@register
class GitSyncAction(Action):
    name = "git_sync"
    needs_root = False
    reversible = True
    param_keys = frozenset({"repo"})

    @classmethod
    def parse_settings(cls, raw: Mapping[str, Any], where: str) -> GitSyncSettings:
        return validate_model(GitSyncSettings, raw, where)

    # ------------------------------------------------------------ lookups

    def _spec(self, ctx: ActionContext) -> RepoSpec:
        settings: GitSyncSettings | None = ctx.settings
        if settings is None:
            raise ActionRefused("git_sync has no settings (actions.git_sync.repos)")
        wanted = ctx.params.get("repo", "")
        if not wanted and len(settings.repos) == 1:
            return next(iter(settings.repos.values()))
        if wanted in settings.repos:
            return settings.repos[wanted]
        for spec in settings.repos.values():
            if str(spec.path) == wanted:
                return spec
        raise ActionRefused(f"repo {wanted!r} is not in actions.git_sync.repos")

    def target(self, ctx: ActionContext) -> str:
        try:
            return f"repo:{self._spec(ctx).path}"
        except ActionRefused:
            return f"repo:{ctx.params.get('repo', '')}"

    @staticmethod
    def _open(spec: RepoSpec) -> git.Repo:
        try:
            return git.Repo(spec.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise ActionRefused(f"{spec.path} is not a git checkout") from None

    @staticmethod
    def _in_progress(repo: git.Repo) -> str | None:
        gd = Path(repo.git_dir)
        for name, what in (
            ("MERGE_HEAD", "merge"),
            ("rebase-merge", "rebase"),
            ("rebase-apply", "rebase/am"),
        ):
            if (gd / name).exists():
                return what
        return None

    @staticmethod
    def _branch(repo: git.Repo, spec: RepoSpec) -> str:
        if repo.head.is_detached:
            raise ActionRefused(f"{spec.path}: HEAD is detached; healer only syncs a checked-out branch")
        current = repo.active_branch.name
        if spec.branch is not None and current != spec.branch:
            raise ActionRefused(
                f"{spec.path}: on branch {current!r}, configured for {spec.branch!r}; healer never switches branches"
            )
        return current

    @contextmanager
    def _env(self, repo: git.Repo, ctx: ActionContext) -> Iterator[None]:
        """No credential prompts; a committer identity only where the repo has none (stash needs one)."""
        env = {"GIT_TERMINAL_PROMPT": "0"}
        try:
            # Ask git itself: it knows every config layer and env var GitPython's reader misses.
            repo.git.var("GIT_COMMITTER_IDENT")
            repo.git.var("GIT_AUTHOR_IDENT")
        except git.GitCommandError:
            env.update(
                GIT_COMMITTER_NAME="healer",
                GIT_COMMITTER_EMAIL="healer@localhost",
                GIT_AUTHOR_NAME="healer",
                GIT_AUTHOR_EMAIL="healer@localhost",
            )
        with repo.git.custom_environment(**env):
            yield

    def _git(self, ctx: ActionContext, repo: git.Repo, *args: str, timeout: float | None = None) -> str:
        """One audited git command; GitCommandError propagates with its stderr."""
        try:
            out = repo.git.execute(["git", *args], kill_after_timeout=timeout)
        except git.GitCommandError as exc:
            ctx.audit("git", {"argv": ["git", *args], "rc": exc.status, "output": str(exc.stderr).strip()[-400:]})
            raise
        ctx.audit("git", {"argv": ["git", *args], "rc": 0, "output": str(out).strip()[-400:]})
        return str(out)

    def check(self, ctx: ActionContext) -> None:
        spec = self._spec(ctx)
        repo = self._open(spec)
        busy = self._in_progress(repo)
        if busy:
            raise ActionRefused(f"{spec.path}: a {busy} is already in progress; a human must finish it first")
        if repo.index.unmerged_blobs():
            raise ActionRefused(f"{spec.path}: has unmerged paths; resolve them first")
        self._branch(repo, spec)
        if spec.remote not in [r.name for r in repo.remotes]:
            raise ActionRefused(f"{spec.path}: no remote named {spec.remote!r}")

    # ------------------------------------------------------------ run

    def apply(self, ctx: ActionContext) -> JSON:
        self.check(ctx)
        spec = self._spec(ctx)
        settings: GitSyncSettings = ctx.settings
        repo = self._open(spec)
        branch = self._branch(repo, spec)
        upstream = f"{spec.remote}/{branch}"
        old_head = repo.head.commit.hexsha
        message = f"healer incident {ctx.incident_id}"
        state: JSON = {
            "path": str(spec.path),
            "branch": branch,
            "upstream": upstream,
            "strategy": spec.strategy,
            "old_head": old_head,
            "stash": None,
            "stash_message": message,
        }
        ctx.checkpoint(state)
        with self._env(repo, ctx):
            if repo.is_dirty(untracked_files=True):
                self._git(ctx, repo, "stash", "push", "--include-untracked", "-m", message)
                state["stash"] = self._git(ctx, repo, "rev-parse", "refs/stash").strip()
                ctx.checkpoint(state)
                log.info("stashed", path=str(spec.path), stash=state["stash"], message=message)
            try:
                self._git(ctx, repo, "fetch", spec.remote, timeout=settings.timeout)
            except git.GitCommandError as exc:
                raise ActionError(self._report(state, "fetch", exc)) from None
            try:
                if spec.strategy == "ff-only":
                    self._git(ctx, repo, "merge", "--ff-only", upstream)
                elif spec.strategy == "merge":
                    self._git(ctx, repo, "merge", "--no-edit", upstream)
                else:
                    self._git(ctx, repo, "rebase", upstream)
            except git.GitCommandError as exc:
                self._roll_back(ctx, repo, old_head)
                raise ActionError(self._report(state, spec.strategy, exc)) from None
        state["new_head"] = repo.head.commit.hexsha
        log.info("synced", path=str(spec.path), old=old_head[:12], new=state["new_head"][:12])
        return state

    @staticmethod
    def _report(state: JSON, step: str, exc: git.GitCommandError) -> str:
        err = " ".join(str(exc.stderr).split())[-300:]
        msg = f"git_sync {state['path']}: {step} failed ({err}); HEAD is back at {state['old_head'][:12]}"
        if state.get("stash"):
            msg += (
                f"; local changes are kept in stash {state['stash'][:12]} ({state['stash_message']!r}),"
                f" restore with: git stash apply {state['stash'][:12]}"
            )
        return msg

    def _roll_back(self, ctx: ActionContext, repo: git.Repo, old_head: str) -> None:
        busy = self._in_progress(repo)
        if busy == "merge":
            self._git(ctx, repo, "merge", "--abort")
        elif busy is not None:
            self._git(ctx, repo, "rebase", "--abort")
        self._git(ctx, repo, "reset", "--hard", old_head)

    def verify(self, ctx: ActionContext, state: JSON) -> VerifyResult:
        repo = git.Repo(state["path"])
        head = repo.head.commit
        upstream = repo.commit(state["upstream"])
        if repo.index.unmerged_blobs():
            return VerifyResult(False, "unmerged paths remain")
        if state["strategy"] == "ff-only":
            if head != upstream:
                return VerifyResult(False, f"HEAD {head.hexsha[:12]} != {state['upstream']} {upstream.hexsha[:12]}")
        elif not repo.is_ancestor(upstream, head):
            return VerifyResult(False, f"{state['upstream']} is not contained in HEAD")
        marked = self._conflict_markers(repo, state["old_head"])
        if marked:
            return VerifyResult(False, f"conflict markers in {', '.join(marked[:5])}")
        detail = f"HEAD {head.hexsha[:12]} matches {state['upstream']}"
        if state.get("stash"):
            detail += f"; local changes kept in stash {state['stash'][:12]}"
        return VerifyResult(True, detail)

    @staticmethod
    def _conflict_markers(repo: git.Repo, since: str) -> list[str]:
        root = Path(repo.working_tree_dir or ".")
        names = [n for n in repo.git.diff("--name-only", since, "HEAD").splitlines() if n]
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

    def undo(self, ctx: ActionContext, state: JSON) -> None:
        """Hard-reset to the recorded HEAD; anything edited since apply is stashed first, never lost."""
        repo = git.Repo(state["path"])
        if repo.head.is_detached or repo.active_branch.name != state["branch"]:
            raise ActionError(f"{state['path']}: no longer on {state['branch']!r}; undo by hand")
        with self._env(repo, ctx):
            busy = self._in_progress(repo)
            if busy is not None:
                self._roll_back(ctx, repo, state["old_head"])
            if repo.is_dirty(untracked_files=True):
                self._git(
                    ctx,
                    repo,
                    "stash",
                    "push",
                    "--include-untracked",
                    "-m",
                    f"healer incident {ctx.incident_id} before undo",
                )
            self._git(ctx, repo, "reset", "--hard", state["old_head"])
        ctx.audit(
            "git_sync_undo",
            {"path": state["path"], "head": state["old_head"], "stash_kept": state.get("stash")},
        )
        log.info("git_sync_undone", path=state["path"], head=state["old_head"][:12], stash=state.get("stash"))


__all__ = ["GitSyncAction", "GitSyncSettings"]
