"""pip_install against a real throwaway venv and a local wheelhouse (no network)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.actions import make_ctx

from healer.core.enums import Confirm
from healer.core.errors import ActionRefused, HostileValue, ParamError
from healer.core.proc import Runner
from healer.remedy.builtin.pip_install import PipInstallAction, canonical


def make_settings(python: Path, wheelhouse: Path, **extra: object):
    raw = {
        "python": str(python),
        "allowed": ["healer-demo-pkg", "requests", "PyYAML"],
        "packages": {"healer_demo": "healer-demo-pkg", "yaml": "PyYAML"},
        "no_index": True,
        "find_links": [str(wheelhouse)],
        "timeout": 120,
        **extra,
    }
    return PipInstallAction.parse_settings(raw, "actions.pip_install")


def test_missing_module_installed_verified_and_undone(venv_python: Path, wheelhouse: Path, tmp_path: Path) -> None:
    runner = Runner()
    settings = make_settings(
        venv_python,
        wheelhouse,
        packages={"healer_demo_pkg": "healer-demo-pkg"},
        constraints=["healer_demo_pkg==1.0"],
    )
    ctx = make_ctx(settings, {"module": "healer_demo_pkg.sub"}, tmp_path, runner=runner)
    action = PipInstallAction()
    assert action.target(ctx) == f"venv:{venv_python}"
    action.check(ctx)
    assert not runner.history  # check() starts nothing
    before = action.verify(
        ctx,
        {
            "python": str(venv_python),
            "module": "healer_demo_pkg.sub",
            "package": "x",
            "spec": "x",
            "was_installed": False,
        },
    )
    assert not before.ok
    state = action.apply(ctx)
    assert state["was_installed"] is False
    assert state["spec"] == "healer-demo-pkg==1.0"
    install = runner.history[-1].argv
    assert list(install[:6]) == [
        str(venv_python),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
    ]
    assert "--no-index" in install and install[-1] == "healer-demo-pkg==1.0"
    assert action.verify(ctx, state).ok
    # A second apply sees it installed, so its undo leaves the package alone.
    state2 = action.apply(ctx)
    assert state2["was_installed"] is True
    n = len(runner.history)
    action.undo(ctx, state2)
    assert len(runner.history) == n
    action.undo(ctx, state)
    assert runner.history[-1].argv[3:] == (
        "uninstall",
        "--disable-pip-version-check",
        "-y",
        "healer-demo-pkg",
    )
    assert not action.verify(ctx, state).ok


@pytest.mark.parametrize(
    "module",
    [
        "notallowed",
        "foo; rm -rf /",
        "--index-url=http://x",
        "../x",
        "git+https://x/y.git",
        "reqeusts",
        "r\u0435quests",  # Cyrillic ie
        "",
        "a b",
        "requests\x00",
        "/abs/path",
        "https://evil.example/pkg.whl",
        "-e.",
    ],
)
def test_hostile_names_refused_before_any_process(tmp_path: Path, module: str) -> None:
    runner = Runner()
    settings = make_settings(Path(sys.executable), tmp_path)
    for key in ("module", "package"):
        ctx = make_ctx(settings, {key: module}, tmp_path, runner=runner)
        with pytest.raises(ActionRefused):
            PipInstallAction().check(ctx)
        with pytest.raises(ActionRefused):
            PipInstallAction().apply(ctx)
    assert runner.history == []


def test_typosquat_message_points_at_the_real_name(tmp_path: Path) -> None:
    settings = make_settings(Path(sys.executable), tmp_path)
    with pytest.raises(ActionRefused, match="typosquat"):
        PipInstallAction().check(make_ctx(settings, {"module": "reqeusts"}, tmp_path))


def test_module_mapping_uses_top_level_only(tmp_path: Path) -> None:
    settings = make_settings(Path(sys.executable), tmp_path)
    pkg, top = PipInstallAction._resolve(make_ctx(settings, {"module": "yaml.constructor"}, tmp_path), settings)
    assert (pkg, top) == ("PyYAML", "yaml")
    assert canonical("Py_YAML.x") == "py-yaml-x"


def test_settings_and_params_validation(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match=r"^actions.pip_install.allowed"):
        PipInstallAction.parse_settings({"python": "/usr/bin/python3"}, "actions.pip_install")
    with pytest.raises(ParamError, match="python"):
        PipInstallAction.parse_settings({"python": "python3", "allowed": ["x"]}, "actions.pip_install")
    with pytest.raises(ParamError, match="must also be listed"):
        PipInstallAction.parse_settings(
            {"python": "/p", "allowed": ["x"], "packages": {"cv2": "opencv-python"}}, "actions.pip_install"
        )
    with pytest.raises(ParamError, match="not a pin"):
        PipInstallAction.parse_settings(
            {"python": "/p", "allowed": ["x"], "constraints": ["x @ https://e/x.whl"]}, "actions.pip_install"
        )
    PipInstallAction.validate_params({"module": "{module}"})
    with pytest.raises(ParamError):
        PipInstallAction.validate_params({"module": "{module}", "package": "x"})
    with pytest.raises(ParamError):
        PipInstallAction.validate_params({"package": "--pre"})


def test_probe_imports_in_the_real_venv(venv_python: Path, wheelhouse: Path, tmp_path: Path) -> None:
    settings = make_settings(venv_python, wheelhouse, packages={"healer_demo_pkg": "healer-demo-pkg"})
    ctx = make_ctx(settings, {"module": "healer_demo_pkg.sub"}, tmp_path)
    action = PipInstallAction()
    found = action.confirm(ctx)
    assert found.status is Confirm.CONFIRMED
    assert found.detail.startswith(f"import healer_demo_pkg.sub fails in {venv_python}: ")
    assert "No module named 'healer_demo_pkg'" in found.detail
    state = action.apply(ctx)
    try:
        found = action.confirm(ctx)
        assert (found.status, found.detail) == (
            Confirm.REFUTED,
            f"healer_demo_pkg.sub imports in {venv_python}: the app runs another interpreter",
        )
    finally:
        action.undo(ctx, state)
    by_package = make_ctx(settings, {"package": "healer-demo-pkg"}, tmp_path)
    found = action.confirm(by_package)
    assert found.status is Confirm.CONFIRMED
    assert found.detail.startswith(f"healer-demo-pkg is not installed in {venv_python}: ")


def test_probe_of_a_hostile_module_starts_nothing(venv_python: Path, wheelhouse: Path, tmp_path: Path) -> None:
    runner = Runner()
    settings = make_settings(venv_python, wheelhouse)
    ctx = make_ctx(settings, {"module": "--index-url=http://evil"}, tmp_path, runner=runner)
    with pytest.raises(HostileValue, match="looks like a command-line option"):
        PipInstallAction().confirm(ctx)
    assert runner.history == []
