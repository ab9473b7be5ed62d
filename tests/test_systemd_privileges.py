"""polkit and sudoers rules: valid syntax, exact scope, no injection."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from healer.service.privileges import normalize_unit, polkit_rule, sudoers_rule, validate_unit

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
# "" = absent (the tests that need one skip), so argv items stay plain str.
NODE = shutil.which("node") or ""
VISUDO = shutil.which("visudo") or ""

# Runs the generated rule against a stub of polkit's JS API and prints the
# decision for each (user, verb, unit) case, so we test behaviour, not text.
HARNESS = r"""
var rules = [];
var polkit = { Result: { YES: "yes", NO: "no", NOT_HANDLED: "not_handled" },
               addRule: function (f) { rules.push(f); } };
%s
var cases = %s;
var out = cases.map(function (c) {
  var action = { id: c[0], lookup: function (k) { return k === "verb" ? c[2] : c[3]; } };
  return rules[0](action, { user: c[1] });
});
console.log(JSON.stringify(out));
"""

BAD_NAMES = [
    'x"]; polkit.Result.YES; //',
    "redis.service\nhealer ALL=(ALL) NOPASSWD: ALL",
    "a b.service",
    "redis,ALL",
    "x=y",
    "",
    "-H.evil",
    "--root",
    "../../etc/passwd",
    "a\\x2d.service",
    "unit'",
    "ü.service",
]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_injected_names_raise(bad):
    with pytest.raises(ValueError):
        polkit_rule(["ok.service", bad])
    with pytest.raises(ValueError):
        sudoers_rule(["ok.service", bad])


def test_string_instead_of_list_is_rejected():
    with pytest.raises(TypeError):
        polkit_rule("redis.service")  # type: ignore[arg-type]  # the wrong type is the point of the test


def test_empty_list_is_rejected():
    with pytest.raises(ValueError):
        polkit_rule([])


def test_bad_user_and_systemctl_rejected():
    with pytest.raises(ValueError):
        polkit_rule(["a.service"], user='x"')
    with pytest.raises(ValueError):
        sudoers_rule(["a.service"], systemctl="systemctl")
    with pytest.raises(ValueError):
        sudoers_rule(["a.service"], systemctl="/usr/bin/systemctl --force")


def test_normalize_adds_service_suffix():
    assert normalize_unit("redis") == "redis.service"
    assert normalize_unit("app@1.service") == "app@1.service"
    assert normalize_unit("backup.timer") == "backup.timer"
    assert validate_unit("getty@tty1.service") == "getty@tty1.service"


@pytest.mark.skipif(not NODE, reason="node not installed")
def test_polkit_rule_is_valid_js(tmp_path):
    f = tmp_path / "r.rules.js"
    f.write_text(polkit_rule(["redis.service", "nginx", "app@1.service"]))
    subprocess.run([NODE, "--check", str(f)], check=True)


@pytest.mark.skipif(not NODE, reason="node not installed")
def test_polkit_rule_behaviour(tmp_path):
    units = ["redis.service", "nginx", "app@1.service"]
    text = polkit_rule(units)
    for u in ["redis.service", "nginx.service", "app@1.service"]:
        assert json.dumps(u) in text
    manage = "org.freedesktop.systemd1.manage-units"
    cases = [
        [manage, "healer", "restart", "redis.service"],
        [manage, "healer", "restart", "nginx.service"],
        [manage, "healer", "restart", "app@1.service"],
        [manage, "healer", "stop", "redis.service"],
        [manage, "healer", "start", "redis.service"],
        [manage, "healer", "restart", "sshd.service"],
        [manage, "healer", "restart", "app@2.service"],
        [manage, "mallory", "restart", "redis.service"],
        ["org.freedesktop.systemd1.manage-unit-files", "healer", "restart", "redis.service"],
    ]
    js = tmp_path / "h.js"
    js.write_text(HARNESS % (text, json.dumps(cases)))
    out = subprocess.run([NODE, str(js)], check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == ["yes", "yes", "yes"] + ["not_handled"] * 6


def test_sudoers_exact_lines():
    text = sudoers_rule(["redis.service", "redis.service", "app@1.service"])
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == [
        "healer ALL=(root) NOPASSWD: /usr/bin/systemctl restart redis.service",
        "healer ALL=(root) NOPASSWD: /usr/bin/systemctl restart app@1.service",
    ]
    assert "\\:" in sudoers_rule(["a:b.service"])


@pytest.mark.skipif(not VISUDO, reason="visudo (Debian sudo) not installed")
def test_sudoers_passes_visudo(tmp_path):
    f = tmp_path / "healer"
    f.write_text(sudoers_rule(["redis.service", "app@1.service", "a:b.service"], systemctl="/bin/systemctl"))
    subprocess.run([VISUDO, "-c", "-q", "-f", str(f)], check=True)


def test_shipped_examples_are_current():
    """The files in systemd/ are generated output; keep them regenerated."""
    rules = (SYSTEMD / "healer-restart.rules").read_text()
    units = json.loads(rules[rules.index("[") : rules.index("]") + 1])
    assert rules == polkit_rule(units)
    sudo = (SYSTEMD / "healer.sudoers.example").read_text()
    assert sudoers_rule(units) in sudo
    if VISUDO:
        subprocess.run([VISUDO, "-c", "-q", "-f", str(SYSTEMD / "healer.sudoers.example")], check=True)
