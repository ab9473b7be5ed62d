"""The file checkpoint service's staged writes: the undo state first, one close per descriptor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from healer.remedy import files


def test_a_failed_checkpoint_leaves_the_target_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("MODEL=a\n")
    before = files.read(target)
    staged = files.stage(target, b"MODEL=b\n", files.FileMeta.ours())

    def checkpoint() -> None:
        raise OSError("state dir full")

    with pytest.raises(OSError, match="state dir full"):
        staged.commit_after(checkpoint, before)
    assert target.read_text() == "MODEL=a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_discard_after_commit_never_closes_a_descriptor_it_no_longer_owns(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("MODEL=a\n")
    staged = files.stage(target, b"MODEL=b\n", files.FileMeta.ours())
    number = staged.dir_fd
    staged.commit_after(lambda: None, files.read(target))
    other = os.open(tmp_path, os.O_RDONLY)  # POSIX gives the lowest free number: the one just closed
    try:
        assert other == number
        staged.discard()  # what an error path after the commit does
        os.fstat(other)  # still open: a second close would have taken it (EBADF here)
    finally:
        os.close(other)
    assert target.read_text() == "MODEL=b\n"
