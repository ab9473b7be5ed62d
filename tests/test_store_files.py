"""The store's files on disk: private whatever the umask (issue 19 #18).

The store keeps log lines, which can carry tokens and addresses; another
local user must not read them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from healer.core.enums import AuditKind
from healer.store.db import Store


@pytest.fixture(params=[0o000, 0o022, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_state_dir_and_database_files_are_private(tmp_path: Path, umask: int) -> None:
    state = tmp_path / "var" / "healer"
    store = Store(state / "healer.db")
    try:
        with store.tx() as db:  # a write, so the WAL and its index exist
            store.audit_in(db, AuditKind.DAEMON_STARTED, "test", {}, 1.0)
        files = {p.name: mode(p) for p in state.iterdir()}
        assert mode(state) == 0o700
        assert files == {"healer.db": 0o600, "healer.db-wal": 0o600, "healer.db-shm": 0o600}
    finally:
        store.close()


def test_an_existing_database_made_world_readable_is_made_private_again(tmp_path: Path, umask: int) -> None:
    Store(tmp_path / "healer.db").close()
    (tmp_path / "healer.db").chmod(0o644)
    Store(tmp_path / "healer.db").close()
    assert mode(tmp_path / "healer.db") == 0o600
