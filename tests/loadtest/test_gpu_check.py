"""loadtest/gpu_check.py runs on CPU: tiny image-like model from a repository, and the
conv net it builds itself, each for a fraction of a second per point."""

from __future__ import annotations

import json

from loadtest import gpu_check


def test_gpu_check_on_a_repository_model(tiny_model_repository, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--model-repository", str(tiny_model_repository),
                           "--providers", "cpu", "--batch-sizes", "1,4", "--seconds", "0.2",
                           "--threads", "1", "--concurrent-batches", "2",
                           "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "providers obtained: ['CPUExecutionProvider']" in printed
    report = json.loads(out.read_text())
    assert report["model"].endswith("image/1/model.onnx")
    assert [row["batch"] for row in report["rows"]] == [1, 4]
    for row in report["rows"]:
        assert row["raw"] > 0 and row["iobinding"] > 0 and row["served"] > 0
        assert 1 <= row["mean_batch"] <= row["batch"]
    latency = report["concurrency_1"]
    assert latency["raw_p50_ms"] > 0 and 0 < latency["served_p50_ms"] < 1000


def test_gpu_check_inline_on_the_digit_model(tiny_model_repository, capsys):
    assert gpu_check.main(["--model-repository", str(tiny_model_repository), "--model", "digit",
                           "--providers", "cpu", "--batch-sizes", "8", "--seconds", "0.2",
                           "--inline"]) == 0
    printed = capsys.readouterr().out
    assert "batches inline: True" in printed and "concurrency 1, one item" in printed


def test_gpu_check_builds_its_own_model_and_respects_the_budget(capsys):
    assert gpu_check.main(["--providers", "cpu", "--batch-sizes", "1,2,4",
                           "--seconds", "0.1", "--budget-s", "0", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "conv.onnx" in printed
    assert "budget of 0.0s spent; stopping before batch 1" in printed
