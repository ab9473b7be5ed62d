"""Where each source resumes, read back as typed offsets and cursors after the store is reopened."""

from __future__ import annotations

from pathlib import Path

from healer.core.batch import Offset
from healer.store.db import Store


def test_offsets_and_cursors_survive_a_reopen_as_typed_records(tmp_path: Path) -> None:
    db = tmp_path / "state" / "healer.db"
    store = Store(db)
    with store.tx() as tx:
        store.save_offset(tx, "/var/log/app.log", 11, 2049, 100, "aa", 1.0)
        store.save_offset(tx, "/var/log/app.log", 12, 2049, 7, "bb", 2.0)  # rotated: the newer offset wins
        store.save_offset(tx, "/var/log/web.log", 13, 2049, 0, "", 2.0)
        store.save_cursor(tx, "journald", "s=abc;i=1", 2.0)
    store.close()

    again = Store(db)
    try:
        assert again.saved_offsets() == {
            "/var/log/app.log": Offset("/var/log/app.log", 12, 2049, 7, "bb"),
            "/var/log/web.log": Offset("/var/log/web.log", 13, 2049, 0, ""),
        }
        assert again.cursor("journald") == "s=abc;i=1"
        assert again.cursor("other") is None
    finally:
        again.close()


def test_a_batch_that_fails_leaves_the_old_offset(tmp_path: Path) -> None:
    store = Store(tmp_path / "healer.db")
    try:
        with store.tx() as tx:
            store.save_offset(tx, "/var/log/app.log", 11, 2049, 100, "aa", 1.0)
        try:
            with store.tx() as tx:
                store.save_offset(tx, "/var/log/app.log", 11, 2049, 200, "aa", 2.0)
                raise RuntimeError("the events of this batch could not be written")
        except RuntimeError:
            pass
        assert store.saved_offsets()["/var/log/app.log"].position == 100
    finally:
        store.close()
