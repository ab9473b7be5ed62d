"""healer-alerts.yml: well-formed rules that reference metrics we export.

promtool (Debian ``prometheus``, ~100 MB installed) is not a CI dependency;
when it happens to be installed it is used as well.
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

RULES = Path(__file__).resolve().parent.parent / "systemd" / "healer-alerts.yml"
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


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_check_rules():
    subprocess.run(["promtool", "check", "rules", str(RULES)], check=True)
