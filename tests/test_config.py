"""Config validation: every error names the file, the key path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from healer.app.ruleset import load_ruleset
from healer.core.errors import ConfigError
from healer.settings.load import Environment, apply_overrides, load_settings
from healer.settings.types import parse_duration

ROOT = Path(__file__).resolve().parent.parent


def write(tmp: Path, text: str) -> Path:
    p = tmp / "config.yaml"
    p.write_text(text)
    return p


def test_example_config_loads_as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEALER_TELEGRAM_TOKEN", raising=False)
    s = load_ruleset(ROOT / "config.example.yaml", environ={}).settings
    assert s.kill_switch is False and s.dry_run is False
    assert s.state_dir == ROOT / "state"
    assert s.sources.files[0].path == str(ROOT / "logs" / "*.log")
    assert s.telegram.enabled is False
    assert s.patterns_dirs == (ROOT / "patterns",)
    assert "demo-echo" in s.actions["command"].commands


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("kill_switch: yes please\n", "kill_switch", "expected true or false"),
        ("dry_run: 1\n", "dry_run", "expected true or false"),
        ("sources:\n  files:\n    - service: x\n", "sources.files[0].path", "missing"),
        ("sources:\n  files: nope\n", "sources.files", "expected a list"),
        ("telegram:\n  allowed_chat_ids: [abc]\n", "telegram.allowed_chat_ids", "integer chat ids"),
        ("telegram:\n  token: '123:abc'\n", "telegram.token", "never go in the YAML"),
        ("engine:\n  verify_window: -3\n", "engine.verify_window", ">= 0"),
        ("engine:\n  verify_windw: 3\n", "engine.verify_windw", "unknown key (known keys here: approval_ttl, "),
        ("bogus: 1\n", "bogus", "unknown key"),
        ("actions:\n  rm_rf: {}\n", "actions.rm_rf", "unknown action"),
        (
            "actions:\n  command:\n    commands:\n      x: {argv: ['echo', '{module}']}\n",
            "actions.command.commands.x.argv",
            "not allowed",
        ),
        ("log_level: loud\n", "log_level", "unknown level"),
        # Issue 19 #12: unknown keys under a command were ignored.
        (
            "actions:\n  command:\n    commands:\n      x: {argv: [/bin/true], undoo: [/bin/false]}\n",
            "actions.command.commands.x.undoo",
            "unknown key (known keys here: argv, timeout, undo, verify)",
        ),
        ("actions:\n  restart:\n    units:\n      redis: {timeout: 0}\n", "actions.restart.units.redis.timeout", "> 0"),
        # Accepted and never used before: a key that does nothing is an error.
        ("engine:\n  fix_timeout: 300\n", "engine.fix_timeout", "unknown key"),
        ("sources:\n  files:\n    - {path: a.log, servce: x}\n", "sources.files[0].servce", "unknown key"),
        ("webhooks:\n  sentry: {secret_envv: X}\n", "webhooks.sentry.secret_envv", "unknown key"),
        ("webhooks:\n  sentry: {secret: abc}\n", "webhooks.sentry.secret", "never go in the YAML"),
        ("webhooks:\n  port: 70000\n", "webhooks.port", "<= 65535"),
        ("telegram:\n  routing: {high: loud}\n", "telegram.routing", "unknown route"),
        ("engine:\n  approval_ttl: nan\n", "engine.approval_ttl", "expected a duration"),
        ("engine:\n  breaker_window: '-5m'\n", "engine.breaker_window", "expected a duration"),
        ("raw: {}\n", "raw", "unknown key"),
    ],
)
def test_errors_name_file_key_and_fix(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_ruleset(write(tmp_path, text), environ={})
    msg = str(ei.value)
    assert str(tmp_path / "config.yaml") in msg
    assert key in msg
    assert words in msg


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_settings(write(tmp_path, "a: 1\nb: [\n"), environ={}, dotenv=False)
    assert "invalid YAML at line 3" in str(ei.value)


def test_python_tags_and_missing_file_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(write(tmp_path, "kill_switch: !!python/object/apply:os.system ['true']\n"), environ={})
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_token_from_env_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_BOT_TOKEN", raising=False)
    p = write(tmp_path, "telegram:\n  token_env: MY_BOT_TOKEN\n  allowed_chat_ids: [42]\n")
    (tmp_path / ".env").write_text("MY_BOT_TOKEN=123:secret\n")
    s = load_settings(p)
    assert s.telegram.enabled and s.telegram.token == "123:secret"
    assert "secret" not in repr(s.telegram)
    assert s.telegram.notify_chat_ids == (42,)


def test_env_overrides_every_key(tmp_path: Path) -> None:
    p = write(tmp_path, "engine:\n  verify_window: 60\n")
    env = {"HEALER__ENGINE__VERIFY_WINDOW": "5", "HEALER__KILL_SWITCH": "true", "HEALER__HEALTH__MOUNTS": "[/, /var]"}
    s = load_settings(p, environ=env, dotenv=False)
    assert s.engine.verify_window == 5.0 and s.kill_switch is True and s.health.mounts == ("/", "/var")
    with pytest.raises(ConfigError, match="kill_switch"):
        load_settings(p, environ={"HEALER__KILL_SWITCH": "maybe"}, dotenv=False)
    raw: dict[str, object] = {}
    applied = apply_overrides(raw, Environment({"HEALER__A__B": "1", "OTHER": "x"}, {}))
    assert [o.key for o in applied] == ["a.b"] and raw == {"a": {"b": 1}}


def test_durations() -> None:
    assert parse_duration("90") == 90 and parse_duration("5m") == 300 and parse_duration("2h") == 7200
    assert parse_duration("7d") == 7 * 86400
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_empty_file_is_an_error_not_all_defaults(tmp_path: Path) -> None:
    """A reload that lands between an editor's truncate and write must keep the last good config."""
    for text in ("", "\n", "# only a comment\n"):
        with pytest.raises(ConfigError, match="the file is empty"):
            load_settings(write(tmp_path, text), environ={}, dotenv=False)
