"""Check 6: the journald source reads the container's real journal; its cursor survives a restart of healer."""

from __future__ import annotations

import re

import pytest
from support.systemd_rig import SAY_FILE, SAYER, Rig
from support.waiting import wait_for

pytestmark = pytest.mark.slow


def _say(rig: Rig, seqs: range) -> None:
    rig.box.write(SAY_FILE, "".join(f"ERROR HEALER-JOURNAL-TEST seq={n}\n" for n in seqs))
    rig.box.run(["systemctl", "start", SAYER])  # oneshot: returns once cat has logged every line


def _incident(rig: Rig) -> tuple[int, int]:
    """(incident id, times seen) of the journal-line incident, as `healer errors` prints it; (0, 0) before."""
    out = rig.healer("errors", "--since", "1d").stdout
    m = re.search(r"#(\d+) (?:P[0-3] )?\[low\] \w+ ×(\d+) test-journal-line", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _count(rig: Rig) -> int:
    return _incident(rig)[1]


def _seqs(rig: Rig) -> list[int]:
    """The seq of each journal line healer recorded, as `healer explain` lists them (its last five events)."""
    out = rig.healer("explain", str(_incident(rig)[0])).stdout
    return sorted(
        int(n) for n in re.findall(r"journald:healer-sayer.service: ERROR HEALER-JOURNAL-TEST seq=(\d+)", out)
    )


def test_journal_lines_matched_and_cursor_survives_restart(rig: Rig) -> None:
    rig.use_test_config()
    pid = rig.main_pid()
    # Without a cursor the source starts at the journal's end: wait until it follows.
    wait_for(lambda: bool(rig.events("journald_started", pid)), 30, lambda: repr(rig.events("journald_started")))
    base = _count(rig)
    _say(rig, range(1, 6))
    wait_for(lambda: _count(rig) == base + 5, 30, lambda: rig.healer("errors", "--since", "1d").stdout)
    if base == 0:
        assert _seqs(rig) == [1, 2, 3, 4, 5], rig.healer("explain", str(_incident(rig)[0])).stdout
    cursor_events = [r for r in rig.events("journald_started") if r.get("units") == [SAYER]]
    assert cursor_events, "journald source never started"

    rig.box.run(["systemctl", "stop", "healer"])
    _say(rig, range(6, 9))  # logged while healer is down: must be read after the restart, once
    rig.box.run(["systemctl", "start", "healer"])
    rig.wait_running()
    _say(rig, range(9, 11))
    wait_for(lambda: _count(rig) >= base + 10, 30, lambda: rig.healer("errors", "--since", "1d").stdout)
    started = [r for r in rig.events("journald_started", rig.main_pid())]
    assert started and started[-1]["cursor"] is True, started
    # No line lost, none doubled: exactly ten events for ten lines, 1-5 seen above, 6-10 (read after the restart) here.
    assert _count(rig) == base + 10, rig.healer("errors", "--since", "1d").stdout
    if base == 0:
        assert _seqs(rig) == [6, 7, 8, 9, 10], rig.healer("explain", str(_incident(rig)[0])).stdout
