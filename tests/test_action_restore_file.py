"""restore_file against real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support.actions import make_ctx

from healer.core.enums import Confirm
from healer.core.errors import ActionRefused, ParamError
from healer.remedy.builtin.restore_file import RestoreFileAction

TEMPLATE = b"# copy me\nMODEL=local\nPORT=8080\n"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    d = tmp_path / "app"
    d.mkdir()
    (d / ".env.example").write_bytes(TEMPLATE)
    os.chmod(d / ".env.example", 0o640)
    return d


def settings(app: Path, **extra: object):
    spec = {"path": str(app / ".env"), "template": str(app / ".env.example"), **extra}
    return RestoreFileAction.parse_settings({"files": {"env": spec}}, "actions.restore_file")


def test_missing_env_restored_from_example_and_undo_removes_it(app: Path, tmp_path: Path) -> None:
    ctx = make_ctx(settings(app), {"file": "env"}, tmp_path / "s")
    action = RestoreFileAction()
    action.check(ctx)
    state = action.apply(ctx)
    assert (app / ".env").read_bytes() == TEMPLATE
    # Issue 19 #11: healer's own ids and 0600, never the template's 0640.
    st = (app / ".env").stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert state["existed"] is False and state["backup"] is None
    assert action.verify(ctx, state).ok
    action.undo(ctx, state)
    assert not (app / ".env").exists()


def test_existing_file_is_left_alone(app: Path, tmp_path: Path) -> None:
    (app / ".env").write_bytes(b"MODEL=mine\n")
    ctx = make_ctx(settings(app), {"file": "env"}, tmp_path / "s")
    with pytest.raises(ActionRefused, match="left alone"):
        RestoreFileAction().check(ctx)
    with pytest.raises(ActionRefused):
        RestoreFileAction().apply(ctx)
    assert (app / ".env").read_bytes() == b"MODEL=mine\n"


def test_valid_file_not_overwritten_even_with_overwrite_broken(app: Path, tmp_path: Path) -> None:
    (app / ".env").write_bytes(b"MODEL=mine\n")
    ctx = make_ctx(settings(app, overwrite_broken=True), {"file": "env"}, tmp_path / "s")
    with pytest.raises(ActionRefused):
        RestoreFileAction().apply(ctx)
    assert (app / ".env").read_bytes() == b"MODEL=mine\n"


def test_broken_file_backed_up_replaced_and_undo_restores(app: Path, tmp_path: Path) -> None:
    broken = b"MODEL=ok\nthis line is garbage\n"
    (app / ".env").write_bytes(broken)
    os.chmod(app / ".env", 0o600)
    ctx = make_ctx(settings(app, overwrite_broken=True), {"file": "env"}, tmp_path / "s")
    action = RestoreFileAction()
    state = action.apply(ctx)
    assert "line 2" in state["reason"]
    assert state["backup"] is not None and Path(state["backup"]).read_bytes() == broken
    assert (app / ".env").read_bytes() == TEMPLATE
    assert stat.S_IMODE((app / ".env").stat().st_mode) == 0o600  # kept the old file's mode
    action.undo(ctx, state)
    assert (app / ".env").read_bytes() == broken


def test_empty_file_is_restored_with_backup(app: Path, tmp_path: Path) -> None:
    (app / ".env").write_bytes(b"")
    ctx = make_ctx(settings(app), {"file": "env"}, tmp_path / "s")
    state = RestoreFileAction().apply(ctx)
    assert state["reason"] == "empty" and state["backup"] is not None
    assert Path(state["backup"]).read_bytes() == b""
    assert (app / ".env").read_bytes() == TEMPLATE


def test_broken_yaml_detected(tmp_path: Path) -> None:
    (tmp_path / "c.yaml.example").write_text("a: 1\n")
    (tmp_path / "c.yaml").write_text("a: [1,\n")
    s = RestoreFileAction.parse_settings(
        {
            "files": {
                "c": {
                    "path": str(tmp_path / "c.yaml"),
                    "template": str(tmp_path / "c.yaml.example"),
                    "overwrite_broken": True,
                }
            }
        },
        "actions.restore_file",
    )
    state = RestoreFileAction().apply(make_ctx(s, {"file": "c"}, tmp_path / "s"))
    assert state["reason"].startswith("YAML does not parse")


def test_unknown_name_and_bad_settings(app: Path, tmp_path: Path) -> None:
    with pytest.raises(ActionRefused):
        RestoreFileAction().check(make_ctx(settings(app), {"file": "../../etc/shadow"}, tmp_path / "s"))
    with pytest.raises(ParamError, match="overwrite_broken"):
        RestoreFileAction.parse_settings(
            {"files": {"x": {"path": "/a/b", "template": "/a/c", "overwrite_broken": True}}},
            "actions.restore_file",
        )


def test_new_file_is_ours_and_0600_whatever_the_template_is(app: Path, tmp_path: Path) -> None:
    """Issue 19 #11: a uid-1000, 0666 template gave a uid-1000, 0666 config; now healer's ids and 0600."""
    template = app / ".env.example"
    os.chmod(template, 0o666)
    if os.geteuid() == 0:
        os.chown(template, 1000, 1000)
    RestoreFileAction().apply(make_ctx(settings(app), {"file": "env"}, tmp_path / "s"))
    st = (app / ".env").stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    # An explicit mode in the settings is the one way to get another mode.
    (app / ".env").unlink()
    RestoreFileAction().apply(make_ctx(settings(app, mode="0640"), {"file": "env"}, tmp_path / "s"))
    assert stat.S_IMODE((app / ".env").stat().st_mode) == 0o640


def test_template_reached_through_a_link_is_refused(tmp_path: Path) -> None:
    """The template is read through O_NOFOLLOW too: a link to a root-only file is never copied."""
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:TOPSECRET\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env.example").symlink_to(secret)
    with pytest.raises(ActionRefused, match="symlink"):
        RestoreFileAction().apply(make_ctx(settings(app), {"file": "env"}, tmp_path / "s"))
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "real")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / ".env.example").write_bytes(secret.read_bytes())
    with pytest.raises(ActionRefused, match="linked is a symlink"):
        RestoreFileAction().apply(make_ctx(settings(linked), {"file": "env"}, tmp_path / "s"))
    assert not (app / ".env").exists() and not (tmp_path / "real" / ".env").exists()


def test_probe_confirms_a_missing_empty_or_broken_file_and_refutes_one_that_parses(app: Path, tmp_path: Path) -> None:
    env = app / ".env"
    ctx = make_ctx(settings(app), {"file": "env"}, tmp_path / "s")
    action = RestoreFileAction()

    def probe() -> tuple[Confirm, str]:
        found = action.confirm(ctx)
        return found.status, found.detail

    assert probe() == (Confirm.CONFIRMED, f"{env}: missing")
    env.write_bytes(b"")
    assert probe() == (Confirm.CONFIRMED, f"{env}: empty")
    # Broken is a real fault even without overwrite_broken: the step's own check refuses it, naming the key.
    env.write_bytes(b"MODEL=x\nthis is not an assignment\n")
    assert probe() == (Confirm.CONFIRMED, f"{env}: line 2 is not KEY=value")
    with pytest.raises(ActionRefused, match="overwrite_broken"):
        action.check(ctx)
    env.write_bytes(b"MODEL=x\n")
    assert probe() == (Confirm.REFUTED, f"{env} exists and parses as env: nothing to restore")
    assert env.read_bytes() == b"MODEL=x\n"
    other = RestoreFileAction.parse_settings(
        {"files": {"notes": {"path": str(app / "notes.txt"), "template": str(app / ".env.example")}}},
        "actions.restore_file",
    )
    (app / "notes.txt").write_text("anything\n")
    found = action.confirm(make_ctx(other, {"file": "notes"}, tmp_path / "s"))
    assert (found.status, found.detail) == (
        Confirm.REFUTED,
        f"{app / 'notes.txt'} exists and is not empty: nothing to restore",
    )
