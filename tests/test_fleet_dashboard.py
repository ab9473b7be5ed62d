"""docs/grafana-healer.json: the fleet view queries metrics healer exports, per host, in valid PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from healer.service.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-healer.json"
PROMTOOL = shutil.which("promtool")
# Grafana's variables, as Grafana would expand them for a query.
EXPANDED = {"$host": ".*", "$__rate_interval": "1m", "$__range": "24h"}


def dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard()["panels"] for t in p["targets"]]


def exported() -> set[str]:
    fams = text_string_to_metric_families(Metrics("web-1").render().decode())
    return {fam.name + ("_total" if fam.type == "counter" else "") for fam in fams}


def test_every_query_reads_exported_metrics_for_the_chosen_hosts() -> None:
    names = exported() | {"up"}
    for title, expr in exprs():
        for name in re.findall(r"\b((?:healer_)?[a-z_]+)\{", expr):
            assert name in names, f"{title}: {name} is not exported"
        assert expr.count('host=~"$host"') == expr.count("{"), f"{title}: every selector must honour $host"
        assert expr.startswith("up{") or "by (host" in expr, f"{title}: not per host: {expr}"


def test_the_view_has_incidents_fixes_outcomes_and_breaker() -> None:
    joined = " ".join(e for _, e in exprs())
    for needle in ("healer_incidents_open", "healer_fix_attempts_total", "by (host, outcome)", "healer_circuit_open"):
        assert needle in joined, needle
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["host"]["includeAll"] and variables["host"]["multi"]
    assert "host)" in variables["host"]["definition"]
    panel_ids = [p["id"] for p in dashboard()["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install -y prometheus")
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, Grafana's variables expanded, as a recording rule."""
    assert PROMTOOL is not None
    rules = []
    for i, (_, expr) in enumerate(exprs()):
        for var, value in EXPANDED.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:query{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout
