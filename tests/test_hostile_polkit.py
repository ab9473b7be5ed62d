"""Issue 19 #4: install.sh's polkit rule grants exactly the units the daemon will restart.

The rule comes from healer's own loader: the RESOLVED unit of each
``actions.restart.units`` entry (``redis: {unit: redis-server.service}`` grants
``redis-server.service``, never ``redis.service``), systemd units only, and no
rule at all when none are configured or the config is one healer refuses.
The generated rule is run under node against a stub of polkit's API, so the
test checks what polkit would decide, not the text.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support.install import run_install

REPO = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
RULE = "etc/polkit-1/rules.d/50-healer-restart.rules"
MANAGE = "org.freedesktop.systemd1.manage-units"

CONFIG = """\
state_dir: ./state
actions:
  restart:
    supervisor_conf: /etc/supervisor/supervisord.conf
    units:
      redis: {unit: redis-server.service, timeout: 10}
      web: {unit: nginx}
      worker: {manager: supervisor}
      app: {manager: command, argv: [/srv/app/restart.sh]}
"""
RESOLVED = ["nginx.service", "redis-server.service"]
# Every name a wrong generator could have granted: the keys, the supervisor and command units.
NOT_GRANTED = ["redis.service", "web.service", "worker.service", "app.service", "myapp.service"]

# Loads the rule into a stub of polkit's JS API and prints the decision per case.
HARNESS = r"""
var rules = [];
var polkit = { Result: { YES: "yes", NO: "no", NOT_HANDLED: "not_handled" },
               addRule: function (f) { rules.push(f); } };
%s
var out = %s.map(function (c) {
  var action = { id: c[0], lookup: function (k) { return k === "verb" ? c[2] : c[3]; } };
  return rules[0](action, { user: c[1] });
});
console.log(JSON.stringify(out));
"""


def granted(rule: str, tmp_path: Path) -> list[str]:
    """The units among RESOLVED + NOT_GRANTED that the rule lets healer restart (and nothing else)."""
    assert NODE is not None
    names = RESOLVED + NOT_GRANTED
    cases = [[MANAGE, "healer", "restart", u] for u in names]
    cases += [[MANAGE, "healer", "stop", u] for u in names] + [[MANAGE, "app", "restart", u] for u in names]
    js = tmp_path / "harness.js"
    js.write_text(HARNESS % (rule, json.dumps(cases)))
    out = json.loads(subprocess.run([NODE, str(js)], check=True, capture_output=True, text=True).stdout)
    assert set(out[len(names) :]) == {"not_handled"}  # no other verb, no other user, ever
    return [u for u, decision in zip(names, out[: len(names)], strict=True) if decision == "yes"]


def polkit_config(config: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "healer.service.privileges", "polkit-config", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(NODE is None, reason="node not installed")
def test_rule_for_a_real_config_grants_exactly_the_resolved_units(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    res = polkit_config(config)
    assert res.returncode == 0, res.stderr
    assert granted(res.stdout, tmp_path) == RESOLVED


def test_example_config_and_no_restart_section_give_no_rule(tmp_path):
    for text in ((REPO / "config.example.yaml").read_text(), "state_dir: ./state\n"):
        config = tmp_path / "config.yaml"
        config.write_text(text)
        res = polkit_config(config)
        assert (res.returncode, res.stdout) == (3, "")


def test_a_config_healer_refuses_gives_no_rule_and_says_why(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("actions:\n  restart:\n    units: [redis-server.service]\n")
    res = polkit_config(config)
    assert (res.returncode, res.stdout) == (2, "")
    assert str(config) in res.stderr and "actions.restart.units" in res.stderr


@pytest.mark.slow
def test_install_sh_installs_no_rule_for_the_example_config(source, tmp_path):
    src, wheel = source
    root = tmp_path / "root"
    root.mkdir()
    # A rule left by an older installer (the shipped example) must go, not stay.
    (root / RULE).parent.mkdir(parents=True)
    (root / RULE).write_text((src / "systemd/healer-restart.rules").read_text())
    res = run_install(src, wheel, root)
    # install.sh points the example's ./state at the unit's StateDirectory= (the sandbox makes ./ read-only).
    installed = (root / "etc/healer/config.yaml").read_text()
    assert "state_dir: /var/lib/healer" in installed and "state_dir: ./state" not in installed
    example = (src / "config.example.yaml").read_text()
    # Nothing else changes: the state_dir line, and the demo log source turned off (it would name
    # /etc/healer/logs/*.log, which nothing writes) with its lines kept as comments.
    changed = {
        "state_dir: ./state      # SQLite store (healer.db) and backups\n": (
            "state_dir: /var/lib/healer   # StateDirectory= of healer.service (install.sh)\n"
        ),
        "  files:\n    - path: ./logs/*.log\n      service: demo\n": (
            "  files: []   # install.sh: the demo source is off; list your app's logs here, or use apps:\n"
            "  #   - path: ./logs/*.log\n  #     service: demo\n"
        ),
    }
    for before, after in changed.items():
        assert before in example
        example = example.replace(before, after)
    assert installed == example
    assert not (root / RULE).exists()
    assert "no polkit rule installed" in res.stdout


@pytest.mark.slow
@pytest.mark.skipif(NODE is None, reason="node not installed")
def test_install_sh_generates_the_rule_from_the_resolved_units(source, tmp_path):
    src, wheel = source
    root = tmp_path / "root"
    (root / "etc/healer").mkdir(parents=True)
    (root / "etc/healer/config.yaml").write_text(CONFIG)
    # The staged venv is installed --no-deps, so healer's loader cannot run: no rule, and a warning.
    first = run_install(src, wheel, root)
    assert not (root / RULE).exists()
    assert "could not read" in first.stdout and "no polkit rule installed" in first.stdout
    # Give the staged venv this venv's dependencies (a plain path line: healer itself stays the
    # staged wheel) and install again: the rule is generated by the staged healer.
    staged = next((root / "opt/healer/lib").glob("python3*/site-packages"))
    (staged / "zz-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run_install(src, wheel, root)
    assert granted((root / RULE).read_text(), tmp_path) == RESOLVED
    # An invalid config later: the stale rule is removed rather than kept.
    (root / "etc/healer/config.yaml").write_text("actions:\n  restart:\n    units: [redis-server.service]\n")
    third = run_install(src, wheel, root)
    assert not (root / RULE).exists()
    assert "actions.restart.units" in third.stdout
