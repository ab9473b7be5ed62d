"""The scenarios' table (scenario, verdict, harmed, seconds to heal, outcome) at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.scenario import ROWS, Scenario


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    head = ("scenario", "healed/escalated", "harmed", "s to heal", "outcome recorded")
    widths = [max(len(r[i]) for r in [head, *ROWS]) for i in range(len(head))]
    terminalreporter.section("issue 12 scenarios")
    for row in [head, *ROWS]:
        terminalreporter.write_line(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


@pytest.fixture
def sc(tmp_path: Path) -> Iterator[Scenario]:
    """An app directory ``shop`` under ``tmp_path``; its daemon (once started) is stopped afterwards."""
    scenario = Scenario(tmp_path)
    try:
        yield scenario
    finally:
        scenario.close()
