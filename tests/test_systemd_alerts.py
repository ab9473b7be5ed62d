"""healer-alerts.yml: well-formed rules that reference metrics we export, one alert per host.

promtool comes from Debian's ``prometheus`` package (listed in
.ci/apt-packages.txt; 2.42 on bookworm): it checks the rules, runs their unit
tests (healer-alerts.test.yml: each rule fires for the right host and names
it) and checks the fleet scrape config in docs/fleet/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from healer.service.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "systemd" / "healer-alerts.yml"
RULE_TESTS = ROOT / "systemd" / "healer-alerts.test.yml"
SCRAPE = ROOT / "docs" / "fleet" / "prometheus-healer.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: apt-get install -y prometheus (listed in .ci/apt-packages.txt)"
)
EXPECTED = {"HealerDown", "HealerFixesFailing", "HealerCircuitOpen", "HealerConfigReloadFailed"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def _rules():
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    out = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        assert isinstance(group["name"], str)
        out.extend(group["rules"])
    return out


def test_structure():
    rules = _rules()
    assert {r["alert"] for r in rules} == EXPECTED
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, r
        assert isinstance(r["expr"], str) and r["expr"].strip()
        assert DURATION.match(r["for"]), r["for"]
        assert r["labels"]["severity"] in {"critical", "warning", "info"}
        assert r["annotations"]["summary"]
        # Balanced brackets: the cheapest PromQL sanity check without promtool.
        for a, b in ("()", "{}", "[]"):
            assert r["expr"].count(a) == r["expr"].count(b), r["expr"]


def test_exprs_use_exported_metrics():
    m = Metrics()
    m.fix_attempts.labels(action="restart", outcome="failed").inc()
    m.config_reloads.labels(result="failure").inc()
    exported = set()
    for fam in text_string_to_metric_families(m.render().decode()):
        exported |= {s.name for s in fam.samples}
    by_name = {r["alert"]: r["expr"] for r in _rules()}
    assert 'up{job="healer"} == 0' in by_name["HealerDown"]
    assert 'outcome=~"failed|rollback_failed"' in by_name["HealerFixesFailing"]
    assert "rate(healer_fix_attempts_total" in by_name["HealerFixesFailing"]
    assert "healer_circuit_open" in by_name["HealerCircuitOpen"]
    for expr in by_name.values():
        for name in re.findall(r"\b(healer_[a-z_]+)\b", expr):
            assert name in exported, name


def test_every_alert_names_its_host():
    for r in _rules():
        assert "{{ $labels.host }}" in r["annotations"]["summary"], r["alert"]
        if "by (" in r["expr"]:
            assert re.search(r"by \(host\b", r["expr"]), r["expr"]


def _promtool(*args: str, cwd: Path | None = None) -> str:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@needs_promtool
def test_promtool_check_rules():
    assert "SUCCESS: 4 rules found" in _promtool("check", "rules", str(RULES))


@needs_promtool
def test_promtool_rule_unit_tests_fire_per_host():
    assert "SUCCESS" in _promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


@needs_promtool
def test_promtool_checks_the_fleet_scrape_config(tmp_path: Path):
    """As shipped, with only the rule file's install path pointed at this checkout."""
    text = SCRAPE.read_text()
    assert "/etc/prometheus/healer-alerts.yml" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/healer-alerts.yml", str(RULES)))
    out = _promtool("check", "config", str(config))
    assert "SUCCESS: 1 rule files found" in out and "SUCCESS: 4 rules found" in out
