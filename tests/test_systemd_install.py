"""install.sh into a staging root: complete, idempotent, and reversible.

pip installs a wheel built once from a snapshot of the repo with
``--no-deps``: the point is the installer's own logic, and resolving
healer's full dependency tree from PyPI would take minutes and need the
network. The snapshot also shields the test from concurrent edits.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from support.install import run_install

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "systemd" / "install.sh"

pytestmark = pytest.mark.slow


def manifest(root: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode, sha256 or symlink target or 'dir') for the whole tree."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = (oct(st.st_mode & 0o7777), "dir")
            else:
                out[rel] = (oct(st.st_mode & 0o7777), hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def installed_config_is_clean(conf: Path, tmp: Path) -> None:
    """State in StateDirectory=, and no demo log source (it would be /etc/healer/logs/*.log, warned at each start)."""
    from healer.app.ruleset import load_ruleset

    text = conf.read_text()
    assert "\nstate_dir: /var/lib/healer " in text
    assert "\n  files: []   # install.sh: the demo source is off;" in text
    assert "\n    - path: ./logs/" not in text
    probe = tmp / "installed.yaml"
    probe.write_text(text.replace("state_dir: /var/lib/healer", f"state_dir: {tmp / 'state'}"))
    rules = load_ruleset(probe, environ={})
    assert rules.settings.sources.files == () and rules.pattern_errors == ()


def test_install_twice_identical_then_uninstall(source, tmp_path):
    src, wheel = source
    root = tmp_path / "root"
    root.mkdir()

    first = run_install(src, wheel, root)
    installed_config_is_clean(root / "etc/healer/config.yaml", tmp_path)
    m1 = manifest(root)
    second = run_install(src, wheel, root)
    m2 = manifest(root)
    assert m1 == m2
    assert "up to date" in second.stdout
    assert "installed " not in second.stdout.replace("installed healer", "")  # nothing rewritten
    assert "not touching systemd" in first.stdout

    files = {
        "opt/healer/bin/healer": None,
        "etc/systemd/system/healer.service": "0o644",
        "etc/logrotate.d/healer": "0o644",
        "usr/lib/sysusers.d/healer.conf": "0o644",
        "usr/lib/tmpfiles.d/healer.conf": "0o644",
        "etc/healer/config.yaml": "0o640",
        "etc/healer/healer.env": "0o600",
    }
    for rel, mode in files.items():
        assert rel in m1, rel
        if mode:
            assert m1[rel][0] == mode, (rel, m1[rel])
    assert "u healer " in (root / "usr/lib/sysusers.d/healer.conf").read_text()
    unit = (root / "etc/systemd/system/healer.service").read_text()
    assert unit == (src / "systemd/healer.service").read_text()
    # The staged venv's console script runs healer from the staged venv.
    assert "opt/healer" in (root / "opt/healer/bin/healer").read_text().splitlines()[0]

    # Config and secrets survive a reinstall untouched.
    (root / "etc/healer/config.yaml").write_text("# edited by operator\n")
    run_install(src, wheel, root)
    assert (root / "etc/healer/config.yaml").read_text() == "# edited by operator\n"

    run_install(src, wheel, root, "--uninstall")
    left = manifest(root)
    for rel in files:
        if not rel.startswith("etc/healer/"):
            assert rel not in left, rel
    assert not (root / "opt/healer").exists()
    assert (root / "etc/healer/config.yaml").exists()
    assert (root / "etc/healer/healer.env").exists()

    run_install(src, wheel, root, "--uninstall", "--purge")
    assert not (root / "etc/healer").exists()


def test_polkit_rule_is_never_the_shipped_example(source, tmp_path):
    """With --no-deps the staged venv cannot run healer's loader, so no rule is
    installed (never the example, which grants units nobody allowlisted);
    generation is covered by test_hostile_polkit and test_systemd_privileges."""
    src, wheel = source
    root = tmp_path / "root"
    (root / "etc/healer").mkdir(parents=True)
    config = "actions:\n  restart:\n    units:\n      redis: {unit: redis-server}\n"
    (root / "etc/healer/config.yaml").write_text(config)
    res = run_install(src, wheel, root)
    assert not (root / "etc/polkit-1/rules.d/50-healer-restart.rules").exists()
    assert "no polkit rule installed" in res.stdout


def test_prefix_is_rewritten_in_unit(source, tmp_path):
    src, wheel = source
    root = tmp_path / "root"
    root.mkdir()
    run_install(src, wheel, root, "--prefix", "/usr/local/healer")
    unit = (root / "etc/systemd/system/healer.service").read_text()
    assert "ExecStart=/usr/local/healer/bin/healer run" in unit
    assert "/opt/healer" not in unit
    assert (root / "usr/local/healer/bin/healer").exists()


def test_uninstall_refuses_foreign_prefix(source, tmp_path):
    src, wheel = source
    root = tmp_path / "root"
    (root / "opt/healer").mkdir(parents=True)
    (root / "opt/healer/precious").write_text("x")
    res = subprocess.run(
        ["bash", str(src / "systemd/install.sh"), "--root", str(root), "--uninstall"],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0
    assert (root / "opt/healer/precious").exists()


def test_bad_options():
    for args in (["--prefix", "relative"], ["--prefix", "/"], ["--purge"], ["--bogus"]):
        res = subprocess.run(["bash", str(INSTALL), "--root", "/nonexistent-x", *args], capture_output=True)
        assert res.returncode != 0, args


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck():
    subprocess.run(["shellcheck", str(INSTALL)], check=True)


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate not installed")
def test_logrotate_snippet_parses(tmp_path):
    # "su healer healer" needs the user to exist; everything else is checked.
    text = (REPO / "systemd/healer.logrotate").read_text().replace("su healer healer", "su root root")
    conf = tmp_path / "healer"
    conf.write_text(text)
    res = subprocess.run(["logrotate", "-d", "-s", str(tmp_path / "status"), str(conf)], capture_output=True, text=True)
    assert "error" not in (res.stdout + res.stderr).lower(), res.stdout + res.stderr
