"""The phrase parser: plain words and slash commands land on the same command."""

from __future__ import annotations

import pytest

from healer.telegram.commands import DEFAULT_WINDOW, parse, parse_window


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("health check", "health"),
        ("Health Check?", "health"),
        ("/health", "health"),
        ("/health@healer_bot", "health"),
        ("health", "health"),
        ("helth", "health"),
        ("show errors", "errors"),
        ("/errors", "errors"),
        ("show erors", "errors"),
        ("fix errors", "fix"),
        ("/fix", "fix"),
        ("Fix errors!", "fix"),
        ("history", "history"),
        ("/history", "history"),
        ("histroy", "history"),
        ("status", "status"),
        ("kill switch", "status"),
        ("/status", "status"),
        ("help", "help"),
        ("/help", "help"),
        ("/start", "help"),
        ("", "help"),
    ],
)
def test_phrases(text: str, name: str) -> None:
    assert parse(text).name == name


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("show errors 6h", 6 * 3600),
        ("/errors 30m", 1800),
        ("errors 2d", 2 * 86400),
        ("show errors last 90 minutes", 5400),
        ("/errors@healer_bot 1h", 3600),
    ],
)
def test_error_windows(text: str, seconds: float) -> None:
    cmd = parse(text)
    assert cmd.name == "errors"
    assert cmd.window == seconds


def test_default_window_and_bounds() -> None:
    assert parse("show errors").window == DEFAULT_WINDOW
    assert parse_window("0h") is None
    assert parse_window("banana") is None
    assert parse_window("9999d") == 30 * 86400


@pytest.mark.parametrize("text", ["explain 12", "/explain 12", "explain #12", "Explain incident 12"])
def test_explain(text: str) -> None:
    cmd = parse(text)
    assert (cmd.name, cmd.incident) == ("explain", 12)


def test_explain_without_number_is_a_polite_error() -> None:
    assert parse("explain").name == "bad"
    assert parse("/explain foo").name == "bad"


@pytest.mark.parametrize(
    "line",
    [
        "ModuleNotFoundError: No module named 'requests'",
        "OSError: [Errno 28] No space left on device",
        "fix errors in /srv/app/main.py line 12 please now",
        "ERROR health check failed for upstream 10.0.0.1",
    ],
)
def test_log_lines_are_not_commands(line: str) -> None:
    cmd = parse(line)
    assert cmd.name == "match"
    assert cmd.text == line
