"""``healer setup DIR`` on a real app directory: a venv, a git checkout with an upstream, env files, a program."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from healer.app.ruleset import load_ruleset
from healer.app.setup import inspect
from healer.cli import main


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    root = tmp_path / "shop"
    subprocess.run(["git", "clone", "-q", str(remote), str(root)], check=True, capture_output=True)
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / "requirements.txt").write_text("requests>=2\n# a comment\nPyYAML==6.0.1\n-r more.txt\n")
    (root / ".env.example").write_text("OPENAI_MODEL=gpt-4o\nREDIS_URL=redis://127.0.0.1:6390/0\n")
    (root / "app.py").write_text("print('hi')\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")
    git(root, "push", "-q", "origin", "main")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
    (root / "logs").mkdir()
    (root / "logs" / "app.log").write_text("")
    return root


def supervisor_conf(tmp: Path, root: Path) -> Path:
    conf = tmp / "supervisord.conf"
    conf.write_text(
        "[supervisord]\nlogfile=/dev/null\n[include]\nfiles = conf.d/*.conf\n",
    )
    (tmp / "conf.d").mkdir()
    (tmp / "conf.d" / "shop.conf").write_text(
        f"[program:shop]\ncommand={root}/.venv/bin/python app.py\ndirectory={root}\n"
        f"stdout_logfile={tmp}/shop.out.log\n\n[program:redis]\ncommand=redis-server --port 6390\n"
    )
    return conf


def test_setup_writes_an_app_block_that_makes_the_bundled_patterns_act(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir()
    conf = supervisor_conf(tmp_path, app_dir)
    argv = ["-c", str(config), "setup", str(app_dir), "--yes", "--fallback", "openai=gpt-4o-mini"]
    assert main([*argv, "--supervisor-conf", str(conf)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {config}" in out
    app = yaml.safe_load(config.read_text())["apps"]["shop"]
    assert app["service"] == {"supervisor": "shop"}
    assert app["venv"] == str(app_dir / ".venv")
    assert app["packages"] == ["requests", "PyYAML"] and app["modules"] == {"yaml": "PyYAML"}
    assert app["checkout"] == {"path": str(app_dir), "remote": "origin", "branch": "main"}
    assert app["env_file"] == {"path": str(app_dir / ".env"), "template": str(app_dir / ".env.example")}
    assert app["models"] == {"openai": {"key": "OPENAI_MODEL", "primary": "gpt-4o", "fallback": "gpt-4o-mini"}}
    assert app["redis"] == {"supervisor": "redis", "address": "127.0.0.1:6390"}
    assert app["logs"] == [str(app_dir / "logs" / "*.log"), f"{tmp_path}/shop.out.log"]

    assert main(["-c", str(config), "check"]) == 0
    check = capsys.readouterr().out
    for family, reach in [
        ("redis_down", "acts"),
        ("rate_limit", "acts"),
        ("config_error", "acts"),
        ("git_error", "asks"),
        ("missing_module", "asks"),
    ]:
        assert f"  {family:<16} {reach:<7} " in check, check
    settings = load_ruleset(config, environ={}).settings
    assert settings.actions["restart"].supervisor_conf == str(conf)


def test_setup_says_what_it_could_not_infer_and_keeps_the_comments(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("# my healer\nstate_dir: ./state\n")
    assert main(["-c", str(config), "setup", str(app_dir), "--yes", "--supervisor-conf", "/nonexistent"]) == 0
    out = capsys.readouterr().out
    assert "OPENAI_MODEL=gpt-4o: no fallback model known for openai; rerun with --fallback openai=<model>" in out
    assert "no systemd unit or supervisord program runs here" in out
    assert config.read_text().startswith("# my healer\nstate_dir: ./state\n\napps:\n  shop:\n")
    assert (tmp_path / "config.yaml.bak").read_text() == "# my healer\nstate_dir: ./state\n"
    assert "models" not in yaml.safe_load(config.read_text())["apps"]["shop"]


def test_setup_refuses_a_merge_that_would_not_load(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    before = "state_dir: ./state\nactions:\n  git_sync:\n    repos:\n      shop: {path: /srv/other}\n"
    config.write_text(before)
    assert main(["-c", str(config), "setup", str(app_dir), "--yes"]) == 2
    assert "actions.git_sync.repos.shop" in capsys.readouterr().err
    assert config.read_text() == before


def test_a_host_wide_database_unit_is_an_apps_dependency_only_when_its_env_names_it(
    app_dir: Path, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    units.mkdir()
    for unit in ("postgresql.service", "redis-server.service"):
        (units / unit).write_text("[Service]\nExecStart=/usr/bin/true\n")
    conf = tmp_path / "no-supervisord.conf"
    found = inspect(app_dir, supervisor_conf=conf, unit_dirs=[str(units)])
    # .env.example names REDIS_URL (127.0.0.1:6390) and no database URL.
    assert found.app["redis"] == {"unit": "redis-server.service", "address": "127.0.0.1:6390"}
    assert "postgres" not in found.app
    assert (
        "postgresql.service runs on this host, but the app's env names no postgres URL"
        " (DATABASE_URL, POSTGRES_URL, DB_URL): not added; add apps.shop.postgres by hand if the app uses it"
    ) in found.notes
    (app_dir / ".env.example").write_text("DATABASE_URL=postgresql://shop@127.0.0.1:5432/shop\n")
    found = inspect(app_dir, supervisor_conf=conf, unit_dirs=[str(units)])
    assert found.app["postgres"] == {"unit": "postgresql.service", "address": "127.0.0.1:5432"}
    assert "redis" not in found.app


def test_setup_takes_the_timings_it_cannot_infer_from_flags(
    app_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir()
    conf = supervisor_conf(tmp_path, app_dir)
    argv = ["-c", str(config), "setup", str(app_dir), "--yes", "--fallback", "openai=gpt-4o-mini"]
    timings = ["--stay-up", "5s", "--revert-after", "1h", "--restart-grace", "15s"]
    assert main([*argv, "--supervisor-conf", str(conf), *timings]) == 0
    data = yaml.safe_load(config.read_text())
    app = data["apps"]["shop"]
    assert app["service"] == {"supervisor": "shop", "stay_up": 5.0}
    assert app["redis"] == {"supervisor": "redis", "address": "127.0.0.1:6390", "stay_up": 5.0}
    assert app["models"]["openai"]["revert_after"] == 3600.0
    assert data["actions"]["restart"]["verify_grace"] == 15.0
    settings = load_ruleset(config, environ={}).settings
    assert settings.actions["restart"].verify_grace == 15.0
    capsys.readouterr()
    assert main(["-c", str(config), "setup", str(app_dir), "--yes", "--stay-up", "soon"]) == 2
    assert "--stay-up 'soon'" in capsys.readouterr().err
