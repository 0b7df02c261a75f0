"""Real train → export → verify → load in ONNX Runtime, for each of the three models.

Uses the session's real_training_root (tests/fixtures/real_models.py): quick real
builds, same code path as `modelserve build-models`. Tests that add versions or
rewrite manifests work on a copy, so the shared repository stays as built.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf

from serving.codecs import TextCodec
from serving.models.manifest import list_versions, read_manifest, sha256_file

pytestmark = pytest.mark.slow

CONTRACT = {  # name: (input, dtype, shape, output, output shape, postprocessing)
    "digit": ("pixels", "float32", [-1, 784], "probabilities", [-1, 10], "softmax"),
    "text": ("tokens", "int32", [-1, 100], "probability", [-1, 1], "sigmoid"),
    "image": ("image", "float32", [-1, 150, 150, 3], "probability", [-1, 1], "sigmoid"),
}


@pytest.fixture
def repo_copy(real_model_repository: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(real_model_repository, tmp_path / "models"))


@pytest.mark.parametrize("name", list(CONTRACT))
def test_version_matches_the_serving_contract(real_model_repository: Path, name: str) -> None:
    version_dir = real_model_repository / name / "1"
    manifest = read_manifest(version_dir)
    in_name, dtype, shape, out_name, out_shape, kind = CONTRACT[name]
    assert [(t.name, t.dtype, t.shape) for t in manifest.inputs] == [(in_name, dtype, shape)]
    assert [(t.name, t.shape) for t in manifest.outputs] == [(out_name, out_shape)]
    assert (manifest.task, manifest.postprocessing.kind) == (name, kind)
    assert manifest.sha256 == sha256_file(version_dir / "model.onnx")
    labels = (version_dir / "labels.txt").read_text().split()
    assert labels == manifest.labels and len(labels) == (10 if name == "digit" else 2)


@pytest.mark.parametrize("name", list(CONTRACT))
def test_onnx_runs_with_a_dynamic_batch(real_model_repository: Path, name: str) -> None:
    version_dir = real_model_repository / name / "1"
    session = ort.InferenceSession(str(version_dir / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    in_name, dtype, shape, out_name, out_shape, kind = CONTRACT[name]
    for batch in (1, 3):
        x = np.random.default_rng(0).random((batch, *shape[1:])).astype(dtype)
        if dtype == "int32":
            x = (x * 1000).astype(np.int32)
        (out,) = session.run([out_name], {in_name: x})
        assert out.shape == (batch, out_shape[1]) and np.all((out >= 0) & (out <= 1))
        if kind == "softmax":
            np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


# How far below its baseline (same split) the quick build may land. The quick build
# trains briefly (tests/fixtures/real_models.py), so it is not expected to beat the
# baseline, only to be clearly better than chance: each floor stays at least four
# standard errors above what a model that always answers the majority class scores
# (a label-blind model lands there or, guessing, lower).
QUICK_MARGIN = {"digit": 0.08, "text": 0.10, "image": 0.20}
BASELINES = {"digit": "pixel_sgd_logreg", "text": "tfidf_logreg", "image": "pixel_logreg"}


def majority_rate(name: str, manifest_dir: Path) -> float:
    """The accuracy of always answering the commonest test label (what a dead model gets)."""
    from training.evaluate import load_test_split

    _, labels = load_test_split(read_manifest(manifest_dir), manifest_dir)
    return float(np.bincount(labels).max() / len(labels))


@pytest.mark.parametrize("name", list(CONTRACT))
def test_accuracy_clears_a_floor_set_from_the_baseline(real_model_repository: Path,
                                                       name: str) -> None:
    version_dir = real_model_repository / name / "1"
    metrics = read_manifest(version_dir).metrics
    baseline = metrics["baseline"]
    assert baseline["name"] == BASELINES[name]
    floor = baseline["test_accuracy"] - QUICK_MARGIN[name]
    majority, items = majority_rate(name, version_dir), metrics["test_items"]
    standard_error = (majority * (1 - majority) / items) ** 0.5
    assert floor >= majority + 4 * standard_error, "the floor would let a dead model pass"
    assert metrics["test_accuracy"] >= floor, (name, metrics["test_accuracy"], baseline)


@pytest.mark.parametrize("name", list(CONTRACT))
def test_manifest_records_metrics_parity_and_provenance(real_model_repository: Path,
                                                        name: str) -> None:
    manifest = read_manifest(real_model_repository / name / "1")
    assert manifest.metrics["test_items"] > 0 and manifest.metrics["train_items"] > 0
    history = manifest.provenance["training"]["history"]
    assert len(history["epochs"]["loss"]) == (history.get("epochs_run")
                                              or manifest.provenance["training"][
                                                  "hyperparameters"]["epochs"])
    prov = manifest.provenance
    assert prov["opset"] == 17 and {"tensorflow-cpu", "tf2onnx", "onnx"} <= set(prov["frameworks"])
    assert datetime.fromisoformat(prov["created"]).utcoffset().total_seconds() == 0
    assert prov["parity"]["max_abs_diff"] <= 1e-4 and prov["parity"]["items"] > 0
    assert prov["build"]["seconds"]["train"] > 0 and prov["export_seconds"] > 0
    assert prov["training"]["hyperparameters"]["seed"] == 42
    assert prov["dataset"]["name"] in {"mnist", "rotten_tomatoes", "image_folder"}


def test_image_model_parity_with_random_weights_and_weights_recorded(
        real_model_repository: Path) -> None:
    manifest = read_manifest(real_model_repository / "image" / "1")
    random = manifest.provenance["parity"]["random_weights"]
    assert random["max_abs_diff"] <= 1e-4 and random["output_spread"] > 1e-3
    weights = manifest.provenance["weights"]
    assert weights["source"] in {"none", "imagenet"} or weights["source"].startswith("file:")
    assert weights["base_trainable"] == (weights["source"] == "none")
    assert manifest.preprocessing["height"] == manifest.preprocessing["width"] == 150


def test_shipped_tokenizer_gives_keras_ids(real_model_repository: Path) -> None:
    version_dir = real_model_repository / "text" / "1"
    manifest = read_manifest(version_dir)
    codec = TextCodec.from_preprocessing(manifest.preprocessing, version_dir)
    keras_tok = tf.keras.preprocessing.text.tokenizer_from_json(
        (version_dir / "tokenizer.json").read_text())
    texts = ["A gripping, funny and sad film!", "dull... and far too long", "Amélie 🎬"]
    expected = tf.keras.utils.pad_sequences(keras_tok.texts_to_sequences(texts), maxlen=100,
                                            padding="post", truncating="post")
    np.testing.assert_array_equal(codec.encode(texts), expected)


def test_export_adds_versions_and_never_overwrites(real_training_root: Path,
                                                   repo_copy: Path) -> None:
    from training.export import export_run

    before = sha256_file(repo_copy / "digit" / "1" / "manifest.json")
    (repo_copy / "digit" / "2").mkdir()  # an unfinished copy: its number is not reused
    second = export_run(real_training_root / "runs" / "digit", repo_copy)
    third = export_run(real_training_root / "runs" / "digit", repo_copy)
    assert (second.name, third.name) == ("3", "4")
    assert list_versions(repo_copy / "digit") == [1, 3, 4]
    assert sha256_file(repo_copy / "digit" / "1" / "manifest.json") == before
    assert read_manifest(third).version == 4
    assert [p.name for p in (repo_copy / "digit").iterdir() if p.name.startswith(".")] == []


def test_failed_parity_check_publishes_nothing(real_training_root: Path,
                                               repo_copy: Path) -> None:
    from training.errors import ExportError
    from training.export import export_run

    with pytest.raises(ExportError, match="parity check failed"):
        export_run(real_training_root / "runs" / "text", repo_copy, tolerance=-1.0)
    assert sorted(p.name for p in (repo_copy / "text").iterdir()) == ["1"]


def test_evaluate_scores_with_onnx_runtime_and_keeps_the_manifest_valid(
        repo_copy: Path) -> None:
    from training.evaluate import evaluate_repository, format_leaderboard

    rows = evaluate_repository(repo_copy, latency_runs=20)
    assert sorted(r["model"] for r in rows) == ["digit", "image", "text"]
    for row in rows:
        version_dir = repo_copy / row["model"] / str(row["version"])
        manifest = read_manifest(version_dir)
        assert manifest.sha256 == sha256_file(version_dir / "model.onnx")
        ort_metrics = manifest.metrics["onnxruntime"]
        assert ort_metrics["size_bytes"] == (version_dir / "model.onnx").stat().st_size
        assert ort_metrics["p50_latency_ms"] > 0
        # Same held-out items as the TF evaluation at training time, so (nearly) the same score.
        assert ort_metrics["test_items"] == manifest.metrics["test_items"]
        assert abs(ort_metrics["test_accuracy"] - manifest.metrics["test_accuracy"]) <= 0.002
        baseline = manifest.metrics["baseline"]["test_accuracy"]
        assert ort_metrics["baseline_accuracy"] == baseline
        assert ort_metrics["vs_baseline"] == round(ort_metrics["test_accuracy"] - baseline, 4)
        assert ort_metrics["below_baseline"] == (ort_metrics["vs_baseline"] < 0)
    board = format_leaderboard(rows).splitlines()
    assert "vs_base" in board[0] and "p50_ms" in board[0]
    losers = [r for r in rows if r["below_baseline"]]
    assert len(board) == 5 + bool(losers)
    for row in rows:
        (line,) = [line for line in board if line.startswith(row["model"])]
        assert (f"{row['vs_baseline']:+.4f}<" in line) == row["below_baseline"]
