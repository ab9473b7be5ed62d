"""The one settings loader: where secrets and overrides come from, and what it refuses.

Each test here failed on the loader before the pydantic schema (issue 11 §5,
issue 19 #1, #12, #13, #14): real files in a temporary directory, the real
loader, and ``healer check`` as a real subprocess where the operator would see it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from healer.app.ruleset import load_ruleset
from healer.core.errors import ConfigError
from healer.settings.load import load_settings

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
kill_switch: true
state_dir: ./state
telegram:
  allowed_chat_ids: [42]
webhooks:
  enabled: true
  alertmanager: {bearer_env: AM_TOKEN, basic_user: am, basic_password_env: AM_PASSWORD}
actions:
  command:
    commands:
      ok: {argv: [/bin/true]}
"""


def config_dir(tmp: Path, text: str = CONFIG) -> Path:
    d = tmp / "etc"
    d.mkdir()
    (d / "config.yaml").write_text(text)
    return d / "config.yaml"


def test_webhook_secrets_come_from_the_env_file_beside_the_config(tmp_path: Path) -> None:
    """README and .env.example say so; before, only the process environment was read."""
    cfg = config_dir(tmp_path)
    (cfg.parent / ".env").write_text(
        "HEALER_SENTRY_SECRET=sentry-s3cret\nHEALER_GLITCHTIP_TOKEN=gt-token\nAM_TOKEN=am-bearer\nAM_PASSWORD=am-pass\n"
    )
    s = load_settings(cfg, environ={})
    hooks = s.webhooks
    assert (hooks.sentry.secret, hooks.glitchtip.token) == ("sentry-s3cret", "gt-token")
    assert (hooks.alertmanager.bearer, hooks.alertmanager.basic_password) == ("am-bearer", "am-pass")
    # The process environment still wins over the file, as for the bot token.
    assert load_settings(cfg, environ={"HEALER_SENTRY_SECRET": "from-env"}).webhooks.sentry.secret == "from-env"
    for secret in ("sentry-s3cret", "gt-token", "am-bearer", "am-pass"):
        assert secret not in repr(s)


def test_env_file_in_the_working_directory_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19 #1: an app's own .env in the cwd rewrote healer's allowlist and kill switch."""
    cfg = config_dir(tmp_path)
    app = tmp_path / "srv-app"
    app.mkdir()
    (app / ".env").write_text(
        'HEALER__ACTIONS__COMMAND__COMMANDS__OK__ARGV=["/bin/sh","-c","id>/tmp/p"]\n'
        "HEALER__KILL_SWITCH=false\nHEALER__TELEGRAM__ALLOWED_CHAT_IDS=[666]\nHEALER_TELEGRAM_TOKEN=stolen\n"
    )
    monkeypatch.chdir(app)
    s = load_ruleset(cfg, environ={}).settings
    assert s.actions["command"].commands["ok"].argv == ("/bin/true",)
    assert s.kill_switch is True
    assert s.telegram.allowed_chat_ids == (42,)
    assert s.telegram.token is None
    assert s.overrides == ()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HEALER__ACTIONS__COMMAND__COMMANDS__OK__ARGV", '["/bin/sh","-c","id"]'),
        ("HEALER__ACTIONS", "{}"),
        ("HEALER__TELEGRAM__ALLOWED_CHAT_IDS", "[666]"),
        ("HEALER__TELEGRAM", "{allowed_chat_ids: [666]}"),
        ("HEALER__WEBHOOKS__HOST", "0.0.0.0"),
        ("HEALER__METRICS__HOST", "0.0.0.0"),
        ("HEALER__PATTERNS_DIRS", "[/tmp]"),
    ],
)
def test_overrides_never_widen_allowlists_or_exposure(tmp_path: Path, variable: str, value: str) -> None:
    """Not from .env beside the config, not from the environment: these keys come from the file only."""
    cfg = config_dir(tmp_path)
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, environ={variable: value})
    msg = str(ei.value)
    assert msg.startswith(f"{variable} (environment): ") and "set " in msg and "in the config file" in msg
    (cfg.parent / ".env").write_text(f"# healer\n{variable}={value}\n")
    with pytest.raises(ConfigError, match=rf"^{variable} \({cfg.parent / '.env'}:2\)"):
        load_settings(cfg, environ={})


def test_overrides_are_listed_with_their_source(tmp_path: Path) -> None:
    """Issue 19 #13: HEALER__KILL_SWITCH in .env silently beat kill_switch: true in the file."""
    cfg = config_dir(tmp_path)
    (cfg.parent / ".env").write_text("HEALER_TELEGRAM_TOKEN=1:x\n\nHEALER__KILL_SWITCH=false\n")
    s = load_settings(cfg, environ={"HEALER__ENGINE__VERIFY_WINDOW": "30s"})
    assert s.kill_switch is False and s.engine.verify_window == 30.0
    assert s.overrides == (
        "engine.verify_window (set by HEALER__ENGINE__VERIFY_WINDOW from environment)",
        f"kill_switch (set by HEALER__KILL_SWITCH from {cfg.parent / '.env'}:3)",
    )
    assert load_settings(cfg, environ={}, dotenv=False).overrides == ()


def test_a_bad_override_names_the_variable_not_the_yaml(tmp_path: Path) -> None:
    cfg = config_dir(tmp_path)
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, environ={"HEALER__ENGINE__VERIFY_WINDOW": "-5m"})
    assert str(ei.value).startswith("HEALER__ENGINE__VERIFY_WINDOW (environment): engine.verify_window: ")
    (cfg.parent / ".env").write_text("A=1\nHEALER__KILL_SWITCH=maybe\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, environ={})
    assert str(ei.value).startswith(
        f"HEALER__KILL_SWITCH ({cfg.parent / '.env'}:2): kill_switch: expected true or false"
    )


def test_an_unparsable_env_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    cfg = config_dir(tmp_path)
    (cfg.parent / ".env").write_text("HEALER_TELEGRAM_TOKEN=1:x\nthis is not an assignment\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, environ={})
    assert str(ei.value).startswith(f"{cfg.parent / '.env'}:2: cannot parse this line")


def alias_bomb(levels: int) -> str:
    """Each level refers to the one before twice: 2**levels leaves once expanded."""
    lines = ["health:", "  mounts: &a0 [x]"]
    lines += [f"  l{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_a_40_level_alias_bomb_is_refused_by_healer_check_quickly(tmp_path: Path) -> None:
    """Issue 19 #12: accepted by `healer check`, then the reload diff walked 2**40 paths."""
    cfg = config_dir(tmp_path, alias_bomb(40))
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "healer.cli", "-c", str(cfg), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    assert time.monotonic() - t0 < 30
    assert res.returncode == 2, res
    assert f"config error: {cfg}" in res.stderr and "aliases" in res.stderr and "line 3" in res.stderr


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def test_huge_config_and_pattern_files_are_refused_before_reading(tmp_path: Path) -> None:
    """Issue 19 #14: a 1 GiB sparse file took the daemon to 2 GB RSS before the 1 MB cap."""
    cfg = sparse(tmp_path / "config.yaml", 1 << 30)
    pats = tmp_path / "patterns"
    pats.mkdir()
    sparse(pats / "huge.yaml", 1 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
            load_settings(cfg, environ={})
        cfg.write_text(f"patterns_dirs: [{pats}]\n")
        rules = load_ruleset(cfg, environ={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [str(e) for e in rules.pattern_errors] == [
        f"{pats / 'huge.yaml'}: file is larger than 1048576 bytes; a settings or pattern file never needs that much"
    ]
    assert peak < 16 << 20, peak


def test_a_fifo_in_place_of_the_config_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings(fifo, environ={})
