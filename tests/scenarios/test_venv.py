"""A package missing from the app's venv (installed from the local wheelhouse), and hostile module names."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.scenario import SETTLED_WITHIN, Scenario, record, tree_digest, tune

# The app imports what requirements.txt lists; the import fails for real in its venv.
APP = """
import healer_demo_pkg
print("INFO shop started, demo value", healer_demo_pkg.VALUE)
"""
# A plugin loader that imports a name taken from a request: the name is the attacker's.
PLUGIN_APP = """
import importlib, sys
importlib.import_module(sys.argv[1])
"""


def imports(python: Path, module: str) -> bool:
    return subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, timeout=30).returncode == 0


def freeze(python: Path) -> str:
    argv = [str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout


def shop_with_venv(sc: Scenario, venv_python: Path, wheelhouse: Path) -> Path:
    """``shop/.venv`` is the module's throwaway venv; pip may install only from the local wheelhouse."""
    (sc.app_dir / ".venv").symlink_to(venv_python.parent.parent)
    (sc.app_dir / "requirements.txt").write_text("healer-demo-pkg==1.0  # the demo package\n")
    app = sc.configure()
    assert app["venv"] == str(sc.app_dir / ".venv") and app["packages"] == ["healer-demo-pkg"]
    actions = {"pip_install": {"no_index": True, "find_links": [str(wheelhouse)]}}
    tune(sc.config, actions=actions)
    return sc.app_dir / ".venv" / "bin" / "python"


def heal_missing_package(sc: Scenario, venv_python: Path, wheelhouse: Path) -> tuple[float, bool]:
    """The real ImportError, the operator's ``healer approve``; (seconds until importable, harmed)."""
    python = shop_with_venv(sc, venv_python, wheelhouse)
    assert not imports(python, "healer_demo_pkg")
    sc.write_app(APP)
    sc.start()
    others = freeze(python)
    before = tree_digest(sc.app_dir, skip=lambda p: p.name == "app.log" or ".venv" in p.parts)
    sc.mark()
    assert sc.run_app(python=str(python)) == 1
    assert "ModuleNotFoundError: No module named 'healer_demo_pkg'" in sc.log.read_text()
    assert "Approved" in sc.approve()  # missing-module asks: installing changes the host
    seconds = sc.until(lambda: imports(python, "healer_demo_pkg"), what="healer_demo_pkg importable in the venv")
    assert sc.run_app(python=str(python)) == 0
    after = freeze(python)
    added = set(after.splitlines()) - set(others.splitlines())
    harmed = added != {"healer-demo-pkg==1.0"} or not set(others.splitlines()) <= set(after.splitlines())
    harmed |= tree_digest(sc.app_dir, skip=lambda p: p.name == "app.log" or ".venv" in p.parts) != before
    return seconds, harmed


def test_a_missing_package_is_installed_into_the_apps_venv_after_approval(
    sc: Scenario, venv_python: Path, wheelhouse: Path
) -> None:
    seconds, harmed = heal_missing_package(sc, venv_python, wheelhouse)
    assert not harmed
    sc.until_history("pip_install: succeeded", timeout=SETTLED_WITHIN)  # the CLI ran it: the daemon's sweep settles it
    record("missing package in venv", "healed (approved)", harmed, seconds, "succeeded")


def test_hostile_module_names_are_a_security_escalation_and_nothing_is_installed(
    sc: Scenario, venv_python: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    python = shop_with_venv(sc, venv_python, wheelhouse)
    sc.write_app(PLUGIN_APP)
    sc.start()
    others = freeze(python)
    marker = tmp_path / "pwned"
    sc.mark()
    for name in ("--index-url=http://evil.example/simple", f"x; touch {marker}"):
        assert sc.run_app(name, python=str(python)) == 1
    assert "No module named '--index-url=http://evil'" in sc.log.read_text()
    sc.caught_up(sc.log)  # the verdict is taken as the line is read: no waiting for what will not come
    seconds = sc.until(lambda: "escalate (hostile_input)" in sc.history(), 1, "a security escalation")
    explained = sc.explain_all()
    assert "escalate (hostile_input)" in explained and "parameter module refused the value" in explained, explained
    # The critical notice a human gets (Telegram, and the daemon's log) names the pattern, the field and the value.
    notices = [line for line in sc.daemon_log().splitlines() if '"text": "SECURITY: ' in line]
    assert all('"severity": "critical"' in n for n in notices), notices
    said = "SECURITY: missing-module: pattern missing-module: parameter module refused the value"
    assert any(f"{said} '--index-url=http://evil': looks like a command-line option" in n for n in notices), notices
    assert any(f"{said} 'x; touch {marker}': looks like a path" in n for n in notices), notices
    harmed = freeze(python) != others or marker.exists()
    assert not harmed
    assert "Fix attempts: 0 total" in sc.history() or "pip_install: refused" in sc.history()
    record("hostile module names", "escalated (security)", harmed, seconds, "refused")
