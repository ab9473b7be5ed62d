"""The app's ``.env``: missing (restored from its template), broken (left alone, a human told)."""

from __future__ import annotations

from support.scenario import Scenario, record, tree_digest

TEMPLATE = "# shop settings\nOPENAI_MODEL=gpt-4o\nDEBUG=0\n"
# The app reads its .env at start, as python-dotenv or a hand-rolled loader does: a missing file is a crash.
APP = """
import sys
from pathlib import Path

for line in open(Path(__file__).parent / ".env"):
    line = line.strip()
    if line and not line.startswith("#") and "=" not in line:
        sys.exit(f"ConfigError: {Path(__file__).parent / '.env'}: line {line!r} is not KEY=value")
print("INFO shop started")
"""


def test_a_missing_env_file_is_restored_from_its_template(sc: Scenario) -> None:
    (sc.app_dir / ".env.example").write_text(TEMPLATE)
    (sc.app_dir / "data.txt").write_text("orders\n")
    sc.write_app(APP)
    app = sc.configure()
    assert app["env_file"] == {"path": str(sc.app_dir / ".env"), "template": str(sc.app_dir / ".env.example")}
    sc.start()
    before = tree_digest(sc.app_dir, skip=lambda p: p.name in (".env", "app.log"))
    sc.mark()
    assert sc.run_app() == 1  # the real crash: FileNotFoundError ... '/.../shop/.env'
    assert "FileNotFoundError: [Errno 2] No such file or directory:" in sc.log.read_text()
    seconds = sc.until(lambda: (sc.app_dir / ".env").exists(), what=".env restored")
    assert (sc.app_dir / ".env").read_text() == TEMPLATE
    assert sc.run_app() == 0  # what the user sees: the app starts again
    sc.until_history("restore_file: succeeded")
    harmed = tree_digest(sc.app_dir, skip=lambda p: p.name in (".env", "app.log")) != before
    assert not harmed
    record("missing .env", "healed", harmed, seconds, "succeeded")


def test_a_broken_env_file_is_not_overwritten_and_a_human_is_told(sc: Scenario) -> None:
    (sc.app_dir / ".env.example").write_text(TEMPLATE)
    broken = "# shop settings\nOPENAI_MODEL=gpt-4o\nthis line was pasted by mistake\n"
    (sc.app_dir / ".env").write_text(broken)
    sc.write_app(APP)
    sc.configure()
    sc.start()
    sc.mark()
    assert sc.run_app() == 1
    seconds = sc.until(lambda: "config-error" in sc.out("errors", "--since", "10m"), what="config-error reported")
    assert (sc.app_dir / ".env").read_text() == broken
    explained = sc.explain()
    assert "notify" in explained, explained
    history = sc.history()
    assert "Fix attempts: 0 total" in history, history
    record("broken .env", "notified (not overwritten)", False, seconds, "none (no fix)")
