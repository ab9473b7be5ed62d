"""Check 5: the shipped polkit rule lets user healer restart exactly the allowlisted units, and nothing else.

The rule is the one install.sh generates from actions.restart.units; the same
grants are then checked for the sudoers alternative, and finally the restart
action heals a real unit that failed.
"""

from __future__ import annotations

import pytest
from support.systemd_rig import OTHER, TARGET, Rig
from support.waiting import wait_for

pytestmark = pytest.mark.slow

RULE = "/etc/polkit-1/rules.d/50-healer-restart.rules"
SUDOERS = "/etc/sudoers.d/healer"


@pytest.fixture(scope="module")
def allowlisted(rig: Rig) -> Rig:
    rig.use_test_config()
    return rig


def _as_healer(rig: Rig, *argv: str) -> tuple[int, str]:
    res = rig.box.run(argv, user="healer", check=False)
    return res.returncode, res.stdout + res.stderr


def test_polkit_rule_is_generated_from_the_allowlist(allowlisted: Rig) -> None:
    rule = allowlisted.box.run(["cat", RULE]).stdout
    assert f'"{TARGET}"' in rule and OTHER not in rule, rule


def test_healer_restarts_allowlisted_unit_over_dbus(allowlisted: Rig) -> None:
    box = allowlisted.box
    before = box.show(TARGET, "MainPID")["MainPID"]
    rc, out = _as_healer(allowlisted, "systemctl", "--no-ask-password", "restart", TARGET)
    assert rc == 0, out
    assert box.show(TARGET, "MainPID")["MainPID"] != before


@pytest.mark.parametrize(
    "verb, unit",
    [("restart", OTHER), ("stop", TARGET), ("start", TARGET), ("enable", TARGET), ("reload-or-restart", TARGET)],
)
def test_polkit_refuses_other_units_and_verbs(allowlisted: Rig, verb: str, unit: str) -> None:
    box = allowlisted.box
    before = box.show(unit, "MainPID", "ActiveState")
    rc, out = _as_healer(allowlisted, "systemctl", "--no-ask-password", verb, unit)
    assert rc != 0
    assert "Interactive authentication required" in out or "Access denied" in out, out
    assert box.show(unit, "MainPID", "ActiveState") == before
    assert box.run(["systemctl", "is-enabled", unit], check=False).stdout.strip() == "static"


def test_sudoers_alternative_allows_exactly_restart(allowlisted: Rig) -> None:
    box = allowlisted.box
    gen = box.run(["/opt/healer/bin/python", "-m", "healer.service.privileges", "sudoers", TARGET]).stdout
    box.write(SUDOERS, gen, mode=0o440)
    try:
        box.run(["visudo", "-c", "-f", SUDOERS])
        rc, out = _as_healer(allowlisted, "sudo", "-n", "/usr/bin/systemctl", "restart", TARGET)
        assert rc == 0, out
        for argv in (
            ("restart", OTHER),
            ("stop", TARGET),
            ("restart", TARGET, OTHER),
            ("--no-block", "restart", TARGET),
        ):
            rc, out = _as_healer(allowlisted, "sudo", "-n", "/usr/bin/systemctl", *argv)
            assert rc != 0 and "password is required" in out, (argv, out)
    finally:
        box.run(["rm", "-f", SUDOERS])


def test_restart_action_heals_a_failed_unit(allowlisted: Rig) -> None:
    box = allowlisted.box
    box.run(["systemctl", "kill", "--kill-whom=main", "--signal=KILL", TARGET])
    wait_for(lambda: box.show(TARGET, "ActiveState")["ActiveState"] == "failed", 30, lambda: repr(box.show(TARGET)))
    allowlisted.log_line("2026-11-22 10:00:00 ERROR HEALER-TARGET-DOWN please restart")

    def fixes() -> list[dict[str, object]]:
        return [r for r in allowlisted.events("fix_finished") if r.get("pattern") == "test-target-down"]

    wait_for(lambda: bool(fixes()), 60, lambda: allowlisted.healer("history").stdout)
    assert fixes()[-1]["outcome"] in ("verifying", "succeeded"), fixes()
    assert box.show(TARGET, "ActiveState")["ActiveState"] == "active"
    history = allowlisted.healer("history").stdout
    assert "test-target-down: act" in history, history
