"""The bench scripts on tiny inputs, so they cannot rot. Formats and counts only, never times."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.timeout(120)


def run(script: str, *args: str, timeout: float = 90) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def num(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return float(m.group(1))


def test_throughput_tiny() -> None:
    out = run("throughput", "--lines", "2000", "--runs", "1", "--no-slow")
    assert re.search(r"^healer replay\s+[\d.]+\s+[\d,]+\s+\d+", out, re.M), out
    assert re.search(r"^grep -E -c -f\s+[\d.]+\s+[\d,]+\s+\d+", out, re.M), out
    num(r"ratio healer/grep: ([\d.]+)", out)
    assert num(r"incidents: (\d+)", out) >= 1


def test_latency_tiny() -> None:
    out = run("latency", "--samples", "20", "--files", "3", "--gap", "2")
    assert num(r"latency: (\d+) samples", out) == 20
    assert num(r"(\d+) not seen", out) == 0
    for key in ("p50_ms", "p99_ms", "max_ms"):
        num(key + r"=([\d.]+)", out)


def test_idle_tiny() -> None:
    out = run("idle", "--seconds", "2", "--files", "3", "--settle", "0.5", "--pokes", "0")
    assert num(r"cpu_pct=([\d.]+)", out) >= 0
    assert num(r"peak_rss_mb=([\d.]+)", out) > 0


def test_storm_scaled_down() -> None:
    out = run("storm", "--scale", "0.005", "--incidents", "5", "--settle", "1")
    assert num(r"lines_counted=(\d+)/", out) == 5000 + 500
    assert num(r"incidents_storm=(\d+)", out) == 1
    assert num(r"incidents_spread=(\d+)", out) == 5
    assert num(r"max_per_incident=(\d+)", out) <= 1
    assert re.search(r"telegram_messages=(\d+|n/a)", out), out


def _shared() -> Path | None:
    repo = BENCH.parent
    for c in (repo.parent / "shared", repo.parent.parent / "shared", Path("/work/shared")):
        if (c / "reference" / "bench-patterns.tsv").exists() and (c / "bench" / "genlog.py").exists():
            return c
    return None


@pytest.mark.skipif(_shared() is None, reason="shared/ (bench-patterns.tsv, genlog.py) is not beside the repository")
def test_samework_tiny() -> None:
    """Every tool's file from the one list, counts checked equal, each section's line printed."""
    out = run("samework", "--lines", "3000", "--runs", "1", "--storm-lines", "300", "--curve", "25,40", "--no-slow")
    assert "COUNTS DIFFER" not in out, out
    grep = num(r"(?m)^grep -c -E -f\s+[\d.]+\s+[\d,]+\s+(\d+)", out)
    healer = num(r"(?m)^healer replay\s+[\d.]+\s+[\d,]+\s+(\d+)", out)
    assert grep == healer > 0
    assert num(r"counts equal: (\d+) lines on every tool", out) == grep
    assert re.search(r"ratio healer/grep \(same work\): [\d.]+ \(target <= 1.5\) (OK|MISSED)", out), out
    assert num(r"(?m)^healer replay storm\s+[\d.]+\s+[\d,]+\s+(\d+)", out) == 300
    assert re.search(r"ratio storm/ordinary \(300 lines each\): [\d.]+ \(target <= 2.0\) (OK|MISSED)", out), out
    assert re.search(r"^\s+40\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out


@pytest.mark.skipif(_shared() is None, reason="shared/ (bench-patterns.tsv, genlog.py) is not beside the repository")
@pytest.mark.skipif(not (Path(sys.executable).parent / "py-spy").exists(), reason="py-spy is not installed")
def test_profile_tiny() -> None:
    out = run("profile", "--lines", "2000", "--top", "3")
    assert num(r"== this checkout: (\d+) samples", out) > 0
    assert re.search(r"(?m)^\s+[\d.]+ %  start-up \(imports, config, patterns\)$", out), out
