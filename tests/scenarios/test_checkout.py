"""A deploy checkout behind its remote (synced after approval) and one with a conflict (escalated, untouched)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.scenario import SETTLED_WITHIN, Scenario, git, record, refs, tree_digest

IGNORED = "logs/\n.env\n"


def deployed(sc: Scenario) -> tuple[Path, Path]:
    """A bare remote with ``main`` and ``feature``, the app dir a clone of it; returns (remote, a dev's clone)."""
    remote, dev = sc.tmp / "remote.git", sc.tmp / "dev"
    git(sc.tmp, "init", "-q", "--bare", str(remote))
    git(sc.tmp, "clone", "-q", str(remote), str(dev))
    (dev / "app.py").write_text("VERSION = 1\nGREETING = 'hello'\n")
    (dev / ".gitignore").write_text(IGNORED)
    git(dev, "add", "-A")
    git(dev, "commit", "-qm", "v1")
    git(dev, "push", "-q", "origin", "HEAD:main")
    git(dev, "switch", "-qc", "feature")
    (dev / "feature.py").write_text("WIP = True\n")
    git(dev, "add", "-A")
    git(dev, "commit", "-qm", "wip")
    git(dev, "push", "-q", "origin", "feature")
    git(dev, "switch", "-q", "main")
    kept = sc.tmp / "logs-kept"  # the app's log dir, made by the rig, is ignored by git and survives the clone
    (sc.app_dir / "logs").rename(kept)
    sc.app_dir.rmdir()
    git(sc.tmp, "clone", "-q", str(remote), str(sc.app_dir))
    git(sc.app_dir, "branch", "-q", "feature", "origin/feature")
    kept.rename(sc.app_dir / "logs")
    return remote, dev


def push_v2(dev: Path) -> None:
    (dev / "app.py").write_text("VERSION = 2\nGREETING = 'hello'\n")
    git(dev, "commit", "-qam", "v2")
    git(dev, "push", "-q", "origin", "main")


def deploy(sc: Scenario, *pull: str) -> int:
    """The deploy job: ``git pull``, its real output into the app's deploy log."""
    res = git(sc.app_dir, "pull", *pull, check=False)
    with (sc.app_dir / "logs" / "deploy.log").open("a") as fh:
        fh.write(res.stdout + res.stderr)
    return res.returncode


def test_a_checkout_behind_its_remote_with_a_local_edit_is_synced_and_the_edit_kept(sc: Scenario) -> None:
    remote, dev = deployed(sc)
    app = sc.configure()
    assert app["checkout"] == {"path": str(sc.app_dir), "remote": "origin", "branch": "main"}
    sc.start()
    push_v2(dev)
    (sc.app_dir / "app.py").write_text("VERSION = 1\nGREETING = 'hello'\nDEBUG = True  # hotfix on the box\n")
    remote_refs, feature = refs(remote), refs(sc.app_dir)["refs/heads/feature"]
    sc.mark()
    assert deploy(sc, "--ff-only") != 0
    assert "would be overwritten by merge" in (sc.app_dir / "logs" / "deploy.log").read_text()
    assert "Approved" in sc.approve()  # git-local-changes-overwritten asks: it touches the checkout
    upstream = refs(remote)["refs/heads/main"]
    seconds = sc.until(lambda: git(sc.app_dir, "rev-parse", "HEAD").stdout.strip() == upstream, what="HEAD at v2")
    assert (sc.app_dir / "app.py").read_text() == "VERSION = 2\nGREETING = 'hello'\n"
    stash = git(sc.app_dir, "stash", "show", "-p", "stash@{0}").stdout
    assert "+DEBUG = True  # hotfix on the box" in stash  # the local edit is kept, not lost
    assert git(sc.app_dir, "status", "--porcelain").stdout == ""
    harmed = refs(remote) != remote_refs or refs(sc.app_dir)["refs/heads/feature"] != feature
    assert not harmed
    sc.until_history("git_sync: succeeded", timeout=SETTLED_WITHIN)
    record("checkout behind remote", "healed (approved)", harmed, seconds, "succeeded")


def conflicted(sc: Scenario) -> tuple[Path, Callable[[], bool]]:
    """A local commit and upstream's v2 touch the same line; the deploy's merge stops with a conflict.

    Returns the remote and a check that nothing of the checkout or the remote changed since.
    """
    remote, dev = deployed(sc)
    sc.configure()
    sc.start()
    push_v2(dev)
    (sc.app_dir / "app.py").write_text("VERSION = 3\nGREETING = 'hotfix'\n")
    git(sc.app_dir, "commit", "-qam", "hotfix on the box")
    sc.mark()
    assert deploy(sc, "--no-rebase", "--no-edit") != 0
    assert "CONFLICT (content): Merge conflict in app.py" in (sc.app_dir / "logs" / "deploy.log").read_text()
    remote_refs, local_refs = refs(remote), refs(sc.app_dir)
    tree = tree_digest(sc.app_dir, skip=lambda p: "logs" in p.parts)

    def unchanged() -> bool:
        same = refs(remote) == remote_refs and refs(sc.app_dir) == local_refs
        return same and tree_digest(sc.app_dir, skip=lambda p: "logs" in p.parts) == tree

    return remote, unchanged


def test_a_checkout_with_a_conflict_is_escalated_at_once(sc: Scenario) -> None:
    _, unchanged = conflicted(sc)
    seconds = sc.until_history("escalate (needs_human)")
    errors = sc.out("errors", "--since", "10m")
    # One fault, one incident: the CONFLICT line wins, "Automatic merge failed" is its evidence.
    assert "git-merge-conflict" in errors and "git-automatic-merge-failed" not in errors, errors
    history = sc.history()
    assert "ask (approval)" not in history, history  # nobody is asked to approve a fix that can only refuse
    assert "Fix attempts: 0 total" in history, history
    assert "escalate (needs_human) " in sc.explain() and "a human is needed: " in sc.explain()
    # The notice a human gets (Telegram, and the daemon's log): high severity, the checkout and the files.
    notice = [line for line in sc.daemon_log().splitlines() if '"kind": "escalation"' in line]
    assert len(notice) == 1 and '"severity": "high"' in notice[0], sc.daemon_log()
    said = f"git-merge-conflict: escalated to a human (needs_human): a human is needed: {sc.app_dir}: a merge is"
    assert f"{said} in progress with conflicts in app.py; git_sync never resolves it" in notice[0], notice[0]
    sc.out("fix")  # the operator's "fix errors": an escalated conflict is not tried either
    sc.caught_up(sc.app_dir / "logs" / "deploy.log")
    harmed = not unchanged()
    assert not harmed
    assert (sc.app_dir / ".git" / "MERGE_HEAD").exists()  # the merge is still there for a human to finish
    assert "Fix attempts: 0 total" in sc.history()
    record("checkout with a conflict", "escalated", harmed, seconds, "none (escalated, untouched)")
