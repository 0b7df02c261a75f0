"""Report parsing on CSV files written by Locust's own writer, the gate, and the plot."""

from __future__ import annotations

import csv
from argparse import Namespace
from pathlib import Path

import pytest
from locust import User
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from loadtest import report


class _Idle(User):
    abstract = False


@pytest.fixture
def csv_prefix(tmp_path: Path) -> Path:
    env = Environment(user_classes=[_Idle], parsed_options=Namespace())
    env.create_local_runner()
    prefix = tmp_path / "run"
    writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, str(prefix), full_history=True)
    for i in range(100):
        fail = RuntimeError("boom") if i < 2 else None
        env.events.request.fire(request_type="POST", name="/v1/digit:predict",
                                response_time=float(i + 1), response_length=10,
                                exception=fail, context={})
    with open(f"{prefix}_stats.csv", "w", newline="") as f:
        writer.requests_csv(csv.writer(f))
    with open(f"{prefix}_stats_history.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(writer.stats_history_csv_columns)
        for t in (1000, 1001, 1002):
            writer._stats_history_data_rows(out, t)
    env.runner.quit()
    return prefix


def test_read_stats_and_gate(csv_prefix: Path):
    stats = report.read_stats(Path(f"{csv_prefix}_stats.csv"))
    total = report.total_row(stats)
    assert (total.requests, total.failures) == (100, 2)
    assert 95 <= total.p99_ms <= 100 and 45 <= total.p50_ms <= 55
    assert report.gate(total, max_failure_rate=0.05, max_p99_ms=None) == []
    problems = report.gate(total, max_failure_rate=0.0, max_p99_ms=50.0)
    assert len(problems) == 2 and "failure rate" in problems[0] and "p99" in problems[1]
    assert report.gate(total, max_failure_rate=1, max_p99_ms=None,
                       exceptions=[(3, "KeyError")]) == ["3x user error: KeyError"]
    assert "| POST | /v1/digit:predict | 100 | 2 |" in report.markdown_table(stats)


def test_history_plot(csv_prefix: Path, tmp_path: Path):
    history = report.read_history(Path(f"{csv_prefix}_stats_history.csv"))
    assert history["t"] == [0, 1, 2] and history["rps"][1:] == [0.0, 0.0]
    png = report.plot_history(history, tmp_path / "plot.png", "test")
    assert png.read_bytes()[:4] == b"\x89PNG"
