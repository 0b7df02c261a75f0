"""CI smoke load: the real server process, every endpoint incl. gRPC, no failed request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ALL_USERS = "digit=1,text=1,image=1,tfserving=1,v2=1,grpc=1"


def modelserve(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serving.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_smoke_load_all_endpoints_no_failures(loadtest_repository: Path, tmp_path: Path):
    out = tmp_path / "report"
    done = modelserve("loadtest", "--model-repository", str(loadtest_repository), "-u", "6",
                      "-r", "6", "-t", "20", "--mix", ALL_USERS, "--out", str(out),
                      "--max-failure-rate", "0", timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust.html",
                 "loadtest.png", "summary.md", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    endpoints = {e["name"]: e for e in summary["endpoints"]}
    assert endpoints["Aggregated"]["failures"] == 0
    assert endpoints["Aggregated"]["requests"] > 100
    names = " ".join(endpoints)
    for expected in ("/v1/digit:predict", "/v1/text:predict", "/v1/image:predict",
                     "/v1/models/digit:predict", "/v2/models/digit/infer",
                     "Predict digit", "ModelInfer digit"):
        assert expected in names, f"{expected} not exercised: {sorted(endpoints)}"
    assert summary["verdict"] == "PASS"
    assert summary["load_generator_cpu_s"] > 0


def test_gate_fails_a_run_over_its_p99_limit(loadtest_repository: Path, tmp_path: Path):
    out = tmp_path / "report"
    done = modelserve("loadtest", "--model-repository", str(loadtest_repository), "-u", "2",
                      "-t", "4", "--mix", "digit=1,image=1", "--out", str(out),
                      "--max-p99-ms", "0.001", timeout=120)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "p99" in json.loads((out / "summary.json").read_text())["verdict"]


def test_bench_quick(loadtest_repository: Path, tmp_path: Path):
    out = tmp_path / "bench"
    done = modelserve("bench", "--model-repository", str(loadtest_repository), "--quick",
                      "--out", str(out), timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "bench.json").read_text())
    protocols = {r["protocol"] for r in results["rows"] if r["model"] == "digit"}
    assert {"rest", "tfserving", "v2", "grpc-tfserving", "grpc-v2", "grpc-stream", "naive",
            "bare-asgi", "bare-rsgi", "bare-grpc-predict", "bare-grpc-infer",
            "bare-grpc-stream"} <= protocols
    assert {r["payload"] for r in results["rows"] if r["protocol"] == "rest"} == {"ints", "floats"}
    failed = [(r["protocol"], r.get("payload"), r["concurrency"], r["errors"], r["items_per_s"],
               r.get("error_sample")) for r in results["rows"]
              if not (r["errors"] == 0 and r["items_per_s"] > 0)]
    assert not failed, failed
    assert results["ceiling"]["digit"]["best_items_per_s"] > 0
    assert results["server"]["startup_s"] > 0 and results["server"]["rss_mb"] > 0
    assert {t["target"].split(" (")[0] for t in results["targets"]} >= {"startup to ready"}
    assert (out / "bench.png").stat().st_size > 0
    assert "| digit | rest |" in (out / "bench.md").read_text()


def test_bench_pairs_each_image_round_with_a_ceiling(loadtest_repository: Path, tmp_path: Path):
    out = tmp_path / "bench"
    done = modelserve("bench", "--model-repository", str(loadtest_repository), "--models",
                      "image", "--protocols", "rest", "--concurrency", "4", "--duration", "1",
                      "--batch-sizes", "1,4", "--paired-rounds", "2", "--no-baseline",
                      "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    paired = json.loads((out / "bench.json").read_text())["server"]["paired"]
    assert (paired["protocol"], paired["concurrency"], len(paired["rounds"])) == ("rest", 4, 2)
    for r in paired["rounds"]:
        assert r["ceiling_batch"] in (1, 4) and r["ceiling_items_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["served_items_per_s"] / r["ceiling_items_per_s"])
    assert paired["ceiling_items_per_s"] == max(paired["ceiling_by_batch"].values())
    assert paired["ratio"] == pytest.approx(paired["served_items_per_s"]
                                            / paired["ceiling_items_per_s"])
    assert "2 interleaved rounds" in (out / "bench.md").read_text()
