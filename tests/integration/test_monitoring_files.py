"""deploy/monitoring: the Prometheus alerting rules and the Grafana dashboard, checked
offline: promtool (when installed), their structure, and every metric name they use
against the /metrics of a real server that has served, batched and refused requests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "prometheus-rules.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
METRIC = re.compile(r"\b(modelserve_[a-z_]+)\b")


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make test installs it with apt-get as root: "
                    "deploy/scripts/promtool-setup.sh)")
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_every_rule_is_complete() -> None:
    rules = _rules()
    assert len({r["alert"] for r in rules}) == len(rules) >= 5
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warn", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert METRIC.search(rule["expr"]), rule["alert"]


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
        assert panel["datasource"]["uid"] == "${datasource}"
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "model", "version"} <= names


async def test_every_metric_used_is_served(make_full_server: Callable[..., Any],
                                           tmp_path: Path) -> None:
    server = await make_full_server(capture_path=tmp_path / "capture.jsonl")
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        assert (await client.post("/v1/digit:predict",
                                  json={"inputs": [[0.5] * 784]})).status_code == 200
        too_many = {"inputs": [[0.5] * 784] * 33}  # max_batch_size is 32
        assert (await client.post("/v1/digit:predict", json=too_many)).status_code == 400
        text = (await client.get("/metrics")).text
    served = {sample.name for family in text_string_to_metric_families(text)
              for sample in family.samples}
    for expr in [r["expr"] for r in _rules()] + _dashboard_exprs():
        for name in METRIC.findall(expr):
            assert name in served, f"{name} (in {expr!r}) is not on /metrics"
