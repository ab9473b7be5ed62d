"""One duration grammar for every file: pattern keys refuse what config keys refuse.

Before, a pattern's ``cooldown: "-5m"`` or ``threshold: {window: "nan"}`` loaded
(float("nan") and a minus sign went straight through); a NaN window means the
pattern never fires.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from healer.app.ruleset import load_pattern_dirs
from healer.core.errors import ConfigError
from healer.settings.load import load_settings
from healer.settings.types import parse_duration

BAD = ["-5m", "nan", "inf", "1e3", "-1", -5, -0.5, float("nan"), float("inf"), True, "5 minutes", ""]


@pytest.mark.parametrize("value", BAD, ids=repr)
@pytest.mark.parametrize("key", ["cooldown", "threshold.window"])
def test_pattern_durations_refused_with_file_id_and_key(tmp_path: Path, key: str, value: object) -> None:
    v = (
        repr(value)
        if not isinstance(value, float)
        else f"!!float {value}".replace("nan", ".nan").replace("inf", ".inf")
    )
    field = f"cooldown: {v}" if key == "cooldown" else f"threshold: {{count: 2, window: {v}}}"
    (tmp_path / "a.yaml").write_text(f"patterns:\n  - id: slow-db\n    regex: x\n    {field}\n    examples: [x]\n")
    res = load_pattern_dirs([tmp_path])
    assert res.patterns == ()
    [err] = res.errors
    msg = str(err)
    assert msg.startswith(f"{tmp_path / 'a.yaml'}:2 [slow-db]: '{key}': "), msg
    assert "duration" in msg


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_config_durations_refuse_the_same_values(tmp_path: Path, value: object) -> None:
    (tmp_path / "config.yaml").write_text("engine: {}\n")
    with pytest.raises(ConfigError, match=r"engine\.verify_window: .*duration"):
        load_settings(tmp_path / "config.yaml", environ={"HEALER__ENGINE__VERIFY_WINDOW": repr(value)}, dotenv=False)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        (90, 90),
        (2.5, 2.5),
        ("45s", 45),
        ("5m", 300),
        ("2h", 7200),
        ("7d", 604800),
        ("2w", 1209600),
        ("250ms", 0.25),
        (0, 0),
    ],  # fmt: skip
)
def test_the_accepted_forms(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
