"""App blocks: one ``apps.<name>`` block makes the bundled patterns act on that app's real things."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.engine import pat

from healer.app.ruleset import load_ruleset
from healer.cli import main
from healer.core.clock import FakeClock
from healer.core.enums import Outcome, SourceName
from healer.core.errors import ConfigError
from healer.core.jobs import FixJob, ProbeJob
from healer.core.proc import Runner
from healer.engine.engine import Engine
from healer.settings.apps import same_place
from healer.store.db import Store


def write_config(tmp: Path, apps: dict[str, Any], **extra: Any) -> Path:
    config = {
        "state_dir": str(tmp / "state"),
        "engine": {"verify_window": 1, "fix_budget_per_hour": 100, "breaker_failures": 100},
        "telegram": {"token_env": "HEALER_TEST_NONE"},
        "apps": apps,
        **extra,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def engine_for(path: Path) -> Engine:
    rules = load_ruleset(path, environ={})
    assert rules.pattern_errors == ()
    return Engine(
        rules.settings, rules.patterns, Store(path.parent / "state" / "healer.db"), clock=FakeClock(), runner=Runner()
    )


def shop(tmp: Path) -> dict[str, Any]:
    (tmp / "shop").mkdir()
    (tmp / "shop" / ".env.example").write_text("OPENAI_MODEL=gpt-4o\nDEBUG=0\n")
    return {
        "logs": [str(tmp / "shop" / "*.log")],
        "env_file": {"path": str(tmp / "shop" / ".env"), "template": str(tmp / "shop" / ".env.example")},
        "models": {"openai": {"key": "OPENAI_MODEL", "primary": "gpt-4o", "fallback": "gpt-4o-mini"}},
    }


def own_pattern(tmp: Path, pattern: dict[str, Any]) -> list[str]:
    """Write one pattern of the user's own; returns the patterns_dirs that load it alone."""
    (tmp / "patterns").mkdir()
    (tmp / "patterns" / "p.yaml").write_text(yaml.safe_dump({"patterns": [pattern]}))
    return [str(tmp / "patterns")]


def fix(engine: Engine, service: str, *lines: str) -> Outcome:
    res = engine.ingest_buffer(
        "".join(line + "\n" for line in lines).encode(), service, f"{service}.log", source=SourceName.FILE
    )
    jobs = [j for j in res.jobs if isinstance(j, FixJob | ProbeJob)]
    assert len(jobs) == 1, res
    attempt = engine.run_job(jobs[0])
    assert attempt is not None
    return attempt.outcome


def test_missing_env_file_restored_from_the_apps_template(tmp_path: Path) -> None:
    engine = engine_for(write_config(tmp_path, {"shop": shop(tmp_path)}))
    env = tmp_path / "shop" / ".env"
    line = f"FileNotFoundError: [Errno 2] No such file or directory: '{env}'"
    assert fix(engine, "shop", line) is Outcome.VERIFYING
    assert env.read_text() == "OPENAI_MODEL=gpt-4o\nDEBUG=0\n"


def test_rate_limit_switches_the_apps_openai_model_to_its_fallback(tmp_path: Path) -> None:
    engine = engine_for(write_config(tmp_path, {"shop": shop(tmp_path)}))
    env = tmp_path / "shop" / ".env"
    env.write_text("# models\nOPENAI_MODEL=gpt-4o\nDEBUG=0\n")
    line = "openai.RateLimitError: Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o'}}"
    assert fix(engine, "shop", line, line, line) is Outcome.VERIFYING
    assert env.read_text() == "# models\nOPENAI_MODEL=gpt-4o-mini\nDEBUG=0\n"


def test_a_role_the_app_lacks_is_refused_naming_the_key(tmp_path: Path) -> None:
    engine = engine_for(write_config(tmp_path, {"shop": shop(tmp_path)}))
    line = "redis.exceptions.ConnectionError: Error 111 connecting to localhost:6379. Connection refused."
    res = engine.ingest_buffer(f"{line}\n{line}\n".encode(), "shop", "shop.log", source=SourceName.FILE)
    [job] = [j for j in res.jobs if isinstance(j, FixJob | ProbeJob)]
    attempt = engine.run_job(job)
    assert attempt is not None and attempt.outcome is Outcome.REFUSED
    assert "add apps.shop.redis" in attempt.detail


def test_each_event_resolves_through_its_own_app(tmp_path: Path) -> None:
    a = shop(tmp_path)
    (tmp_path / "blog").mkdir()
    (tmp_path / "blog" / "env.dist").write_text("BLOG=1\n")
    b = {"env_file": {"path": str(tmp_path / "blog" / ".env"), "template": str(tmp_path / "blog" / "env.dist")}}
    engine = engine_for(write_config(tmp_path, {"shop": a, "blog": b}))
    line = "FileNotFoundError: [Errno 2] No such file or directory: '.env'"
    assert fix(engine, "blog", line) is Outcome.VERIFYING
    assert (tmp_path / "blog" / ".env").read_text() == "BLOG=1\n"
    assert not (tmp_path / "shop" / ".env").exists()


def test_captured_text_shaped_like_a_role_stays_text(tmp_path: Path) -> None:
    """A role is resolved on the pattern's literal params, before groups are filled: '@x' from a log is a name."""
    remediation = [{"action": "restore_file", "params": {"file": "{f}"}}]
    dirs = own_pattern(tmp_path, pat("restore-named", regex=r"lost (?P<f>\S+)", remediation=remediation))
    engine = engine_for(write_config(tmp_path, {"shop": shop(tmp_path)}, patterns_dirs=dirs))
    res = engine.ingest_buffer(b"lost @env_file\n", "shop", "shop.log", source=SourceName.FILE)
    [job] = [j for j in res.jobs if isinstance(j, FixJob | ProbeJob)]
    attempt = engine.run_job(job)
    assert attempt is not None and attempt.outcome is Outcome.REFUSED
    assert not (tmp_path / "shop" / ".env").exists()


def test_app_logs_are_sources_of_that_app(tmp_path: Path) -> None:
    rules = load_ruleset(write_config(tmp_path, {"shop": shop(tmp_path)}), environ={})
    assert [(f.path, f.service) for f in rules.settings.sources.files] == [(str(tmp_path / "shop" / "*.log"), "shop")]


def test_an_entry_named_twice_is_an_error_naming_both(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {"shop": {"service": "shop.service"}},
        actions={"restart": {"units": {"shop": {"unit": "other.service"}}}},
    )
    with pytest.raises(ConfigError) as err:
        load_ruleset(path, environ={})
    assert "actions.restart.units.shop" in str(err.value) and "apps.shop" in str(err.value)


def test_check_prints_what_each_app_can_fix_and_the_missing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = shop(tmp_path) | {"redis": {"unit": "redis-server.service", "address": "127.0.0.1:6379"}}
    assert main(["-c", str(write_config(tmp_path, {"shop": app})), "check"]) == 0
    out = capsys.readouterr().out
    assert "coverage for app shop:" in out
    assert "redis_down       acts    unit:systemd:redis-server.service" in out
    assert "rate_limit       acts    file:" + str(tmp_path / "shop" / ".env") in out
    assert "db_down          notify  app 'shop' has no postgres: add apps.shop.postgres" in out


def test_check_fails_on_an_own_pattern_that_can_never_act(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    remediation = [{"action": "restart", "params": {"service": "cache"}}]
    dirs = own_pattern(
        tmp_path, pat("restart-cache", regex="cache down", remediation=remediation, examples=["cache down"])
    )
    path = write_config(tmp_path, {"shop": {"service": "shop.service"}}, patterns_dirs=dirs)
    assert main(["-c", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert "[restart-cache] can never act: restart: " in err
    assert "'cache' is not in actions.restart.units" in err


def test_a_remote_redis_is_never_restarted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = {"redis": {"unit": "redis-server.service", "address": "10.0.0.5:6379"}}
    assert main(["-c", str(write_config(tmp_path, {"shop": app})), "check"]) == 0
    out = capsys.readouterr().out
    assert "redis_down       notify  apps.shop.redis is at 10.0.0.5:6379, not on this host" in out


@pytest.mark.parametrize(
    ("seen", "expect", "same"),
    [
        ("localhost:6379", "127.0.0.1:6379", True),
        ("[::1]:6379", "127.0.0.1:6379", True),
        ("127.0.0.1:6380", "127.0.0.1:6379", False),
        ("cache.internal:6379", "127.0.0.1:6379", False),
        ("10.0.0.5:6379", "10.0.0.5:6379", True),
    ],
)
def test_same_place(seen: str, expect: str, same: bool) -> None:
    assert same_place(seen, expect) is same


def test_a_line_naming_another_port_does_not_restart_the_apps_redis(tmp_path: Path) -> None:
    params = {"service": "@redis", "address": "{host}:{port}", "expect": "@redis.address"}
    restart = pat(
        "redis-any-port",
        regex="connecting to (?P<host>localhost):(?P<port>[0-9]+)",
        remediation=[{"action": "restart", "params": params}],
        examples=["connecting to localhost:1"],
    )
    app = {"redis": {"unit": "redis-server.service", "address": "127.0.0.1:6390"}}
    engine = engine_for(write_config(tmp_path, {"shop": app}, patterns_dirs=own_pattern(tmp_path, restart)))
    res = engine.ingest_buffer(b"connecting to localhost:6379\n", "shop", "shop.log", source=SourceName.FILE)
    [job] = [j for j in res.jobs if isinstance(j, FixJob | ProbeJob)]
    attempt = engine.run_job(job)
    assert attempt is not None and attempt.outcome is Outcome.REFUSED
    assert "the line names localhost:6379, but redis-server.service listens on 127.0.0.1:6390" in attempt.detail
