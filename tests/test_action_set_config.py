"""set_config and healer.remedy.files against real files."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
import yaml
from support.actions import Recorder, make_ctx

from healer.core.clock import FakeClock
from healer.core.errors import ActionError, ActionRefused, ParamError
from healer.remedy import files
from healer.remedy.builtin.set_config import SetConfigAction, env_get, env_set

ENV = b'# model settings\nexport API_URL=https://api.example/v1  # prod\nMODEL="gpt-big"\n\nOTHER=1\n'


def settings_for(env_path: Path, yaml_path: Path | None = None, revert_after: object = None):
    files: dict = {"app": {"path": str(env_path), "format": "env", "keys": {"MODEL": ["local-fallback", "gpt-big"]}}}
    if yaml_path is not None:
        files["cfg"] = {"path": str(yaml_path), "keys": {"llm.model": ["local-fallback"], "workers": [2, 4]}}
    raw: dict = {"files": files}
    if revert_after is not None:
        raw["revert_after"] = revert_after
    return SetConfigAction.parse_settings(raw, "actions.set_config")


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    p = tmp_path / "app" / ".env"
    p.parent.mkdir()
    p.write_bytes(ENV)
    os.chmod(p, 0o640)
    return p


def test_env_key_changes_backup_and_exact_undo(env_file: Path, tmp_path: Path) -> None:
    clock = FakeClock(1_700_000_000.0)
    settings = settings_for(env_file, revert_after="1h")
    rec = Recorder()
    ctx = make_ctx(
        settings,
        {"file": "app", "key": "MODEL", "value": "local-fallback"},
        tmp_path / "state",
        recorder=rec,
        clock=clock,
    )
    action = SetConfigAction()
    assert action.target(ctx) == f"file:{env_file}"
    action.check(ctx)
    state = action.apply(ctx)
    body = env_file.read_text()
    assert 'MODEL="local-fallback"' in body
    # Every other line, comments and the export prefix survive byte for byte.
    assert body == ENV.decode().replace('MODEL="gpt-big"', 'MODEL="local-fallback"')
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    assert state["revert_at"] == clock.now() + 3600
    backup = state["backup"]
    assert backup is not None
    assert Path(backup).read_bytes() == ENV
    assert stat.S_IMODE(Path(backup).stat().st_mode) == 0o600
    assert rec.checkpoints and rec.checkpoints[0]["backup"] == backup
    assert action.verify(ctx, state).ok
    action.undo(ctx, state)
    assert env_file.read_bytes() == ENV
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640


def test_already_set_is_a_noop(env_file: Path, tmp_path: Path) -> None:
    ctx = make_ctx(settings_for(env_file), {"file": "app", "key": "MODEL", "value": "gpt-big"}, tmp_path / "s")
    state = SetConfigAction().apply(ctx)
    assert state["changed"] is False
    assert env_file.read_bytes() == ENV
    SetConfigAction().undo(ctx, state)
    assert env_file.read_bytes() == ENV


@pytest.mark.parametrize(
    "params",
    [
        {"file": "app", "key": "MODEL", "value": "evil"},
        {"file": "app", "key": "PATH", "value": "local-fallback"},
        {"file": "../etc/passwd", "key": "MODEL", "value": "local-fallback"},
        {"file": "app", "key": "MODEL", "value": "local-fallback\nPATH=/tmp"},
    ],
)
def test_refuses_anything_not_allowlisted(env_file: Path, tmp_path: Path, params: dict) -> None:
    ctx = make_ctx(settings_for(env_file), params, tmp_path / "s")
    with pytest.raises(ActionRefused):
        SetConfigAction().check(ctx)
    assert env_file.read_bytes() == ENV


def test_yaml_nested_key_and_undo(tmp_path: Path, env_file: Path) -> None:
    y = tmp_path / "config.yaml"
    original = b"# comment lost on rewrite\nllm:\n  model: big\n  temperature: 0.2\nworkers: 8\n"
    y.write_bytes(original)
    settings = settings_for(env_file, y)
    action = SetConfigAction()
    ctx = make_ctx(settings, {"file": "cfg", "key": "llm.model", "value": "local-fallback"}, tmp_path / "s")
    state = action.apply(ctx)
    doc = yaml.safe_load(y.read_text())
    assert doc == {"llm": {"model": "local-fallback", "temperature": 0.2}, "workers": 8}
    assert action.verify(ctx, state).ok
    ctx2 = make_ctx(settings, {"file": "cfg", "key": "workers", "value": "4"}, tmp_path / "s")
    state2 = action.apply(ctx2)
    assert yaml.safe_load(y.read_text())["workers"] == 4  # typed as in the allowlist
    action.undo(ctx2, state2)
    action.undo(ctx, state)
    assert y.read_bytes() == original


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match=r"^actions.set_config.files.x.path"):
        SetConfigAction.parse_settings(
            {"files": {"x": {"path": "rel/.env", "keys": {"A": ["b"]}}}}, "actions.set_config"
        )
    with pytest.raises(ParamError, match="keys.MODEL"):
        SetConfigAction.parse_settings(
            {"files": {"x": {"path": "/a/.env", "keys": {"MODEL": ["a'b"]}}}}, "actions.set_config"
        )
    with pytest.raises(ParamError, match="unknown key"):
        SetConfigAction.parse_settings({"files": {}, "typo": 1}, "actions.set_config")


def test_env_helpers_append_and_last_assignment_wins() -> None:
    assert env_set("A=1", "B", "x y") == 'A=1\nB="x y"\n'
    assert env_get("M=1\nM=2\n", "M") == "2"
    assert env_set("M=1\r\nM=2\r\nZ=3\r\n", "M", "9") == "M=1\r\nM=9\r\nZ=3\r\n"
    assert env_get("export M='a b' \n", "M") == "a b"


def test_undo_keeps_a_foreign_edit(env_file: Path, tmp_path: Path) -> None:
    ctx = make_ctx(settings_for(env_file), {"file": "app", "key": "MODEL", "value": "local-fallback"}, tmp_path / "s")
    state = SetConfigAction().apply(ctx)
    env_file.write_bytes(b"MODEL=hand-edited\n")
    SetConfigAction().undo(ctx, state)
    assert env_file.read_bytes() == ENV
    kept = [p for p in (tmp_path / "s" / "backups").iterdir() if "pre-undo" in p.name]
    assert kept and kept[0].read_bytes() == b"MODEL=hand-edited\n"


def test_concurrent_reader_never_sees_partial_file(env_file: Path, tmp_path: Path) -> None:
    """Readers only ever see one of the two complete versions, never empty or torn."""
    settings = settings_for(env_file)
    action = SetConfigAction()
    versions: set[bytes] = {ENV, ENV.replace(b'"gpt-big"', b'"local-fallback"')}
    bad: list[bytes] = []
    stop = threading.Event()
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            data = env_file.read_bytes()
            reads += 1
            if data not in versions:
                bad.append(data)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(150):
            value = "local-fallback" if i % 2 == 0 else "gpt-big"
            ctx = make_ctx(settings, {"file": "app", "key": "MODEL", "value": value}, tmp_path / "s")
            action.apply(ctx)
    finally:
        stop.set()
        t.join()
    assert not bad, bad[:3]
    assert reads > 100
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640
    # no temp files left behind next to the target
    assert sorted(p.name for p in env_file.parent.iterdir()) == [".env"]


def test_files_refuse_a_symlink_keep_the_owner_and_never_reuse_a_backup_name(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"x")
    os.chown(real, 1234, 2345) if os.geteuid() == 0 else None
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ActionRefused, match="symlink"):
        files.read(link)
    before = files.read(real)
    assert before is not None
    files.write(real, b"new", before.meta, before)
    assert real.read_bytes() == b"new"
    if os.geteuid() == 0:
        st = real.stat()
        assert (st.st_uid, st.st_gid) == (1234, 2345)
    snap = files.read(real)
    assert snap is not None
    b1 = files.backup(snap, tmp_path / "bk", label="i1", now=0)
    b2 = files.backup(snap, tmp_path / "bk", label="i1", now=0)
    assert b1 != b2 and b1.read_bytes() == b2.read_bytes() == b"new"


def test_symlinks_on_the_path_are_refused_and_nothing_outside_is_read(tmp_path: Path) -> None:
    """Issue 19 #3: the target and every parent are opened with O_NOFOLLOW; a link swapped in is refused."""
    secret_dir = tmp_path / "root-only"
    secret_dir.mkdir()
    secret = secret_dir / ".env"
    secret.write_bytes(b"MODEL=gpt-big\nTOKEN=TOPSECRET\n")
    os.chmod(secret, 0o600)
    app = tmp_path / "app"
    app.mkdir()
    target = app / ".env"
    target.write_bytes(ENV)
    state_dir = tmp_path / "s"
    ctx = make_ctx(settings_for(target), {"file": "app", "key": "MODEL", "value": "local-fallback"}, state_dir)
    action = SetConfigAction()
    action.check(ctx)
    # Between check and apply the app's user swaps its .env for a link to a root-only file ...
    target.unlink()
    target.symlink_to(secret)
    with pytest.raises(ActionRefused, match="symlink"):
        action.apply(ctx)
    # ... or swaps the whole directory for a link to the root-only one.
    target.unlink()
    app.rmdir()
    app.symlink_to(secret_dir)
    with pytest.raises(ActionRefused, match="app is a symlink"):
        action.apply(ctx)
    assert secret.read_bytes() == b"MODEL=gpt-big\nTOKEN=TOPSECRET\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    backups = state_dir / "backups"
    assert not backups.exists() or not any(b"TOPSECRET" in p.read_bytes() for p in backups.iterdir())


def test_undo_is_refused_when_the_file_was_replaced_since(env_file: Path, tmp_path: Path) -> None:
    """A new inode means someone else owns the file now (an editor's save, or an attacker's swap): not clobbered."""
    ctx = make_ctx(settings_for(env_file), {"file": "app", "key": "MODEL", "value": "local-fallback"}, tmp_path / "s")
    state = SetConfigAction().apply(ctx)
    replacement = env_file.with_name(".env.new")
    replacement.write_bytes(b"MODEL=saved-by-an-editor\n")
    replacement.rename(env_file)
    with pytest.raises(ActionError, match="replaced since healer wrote it") as err:
        SetConfigAction().undo(ctx, state)
    backup = state["backup"]
    assert backup is not None and backup in str(err.value)
    assert env_file.read_bytes() == b"MODEL=saved-by-an-editor\n"
    assert Path(backup).read_bytes() == ENV
