"""Score model versions on their held-out test split through ONNX Runtime (not TF).

The test split is rebuilt from the manifest's provenance (data set, seed, limits) and
preprocessed by the serving codecs built from the manifest, exactly as the server
would; accuracy, model size and p50 single-item latency go back into the manifest.
Only the seed tasks have a test split here: generic models (no task, or a bare
model.onnx) and other tasks are skipped, each with a line saying so.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from serving.codecs import DigitCodec, ImageCodec, TextCodec
from serving.models.manifest import (
    MANIFEST_FILE,
    Manifest,
    has_manifest,
    list_models,
    list_versions,
    read_manifest,
    sha256_file,
    write_manifest,
)
from training import datasets, image_data
from training.errors import DataError, TrainingError

logger = logging.getLogger(__name__)


class NotEvaluated(TrainingError):
    """A version there is no test split for here: skipped, not failed."""


Split = tuple[np.ndarray, np.ndarray]


def load_test_split(manifest: Manifest, version_dir: Path) -> Split:
    """Model-ready test inputs and integer labels, as chosen when the model was trained."""
    return _split_loader(manifest)(manifest, version_dir)


def _split_loader(manifest: Manifest) -> Callable[[Manifest, Path], Split]:
    loaders = {"digit": _digit_split, "text": _text_split, "image": _image_split}
    if manifest.task is None:
        raise NotEvaluated("a generic model (no task): there is no test split to score it on")
    if manifest.task not in loaders:
        raise NotEvaluated(f"task {manifest.task!r} has no test split here (only "
                           f"{', '.join(loaders)} do)")
    return loaders[manifest.task]


def _digit_split(manifest: Manifest, version_dir: Path) -> Split:
    data = manifest.provenance.get("dataset") or {}
    mnist = datasets.load_mnist()
    x, y = datasets.subset(mnist.x_test, mnist.y_test, data.get("test_limit"),
                           data.get("seed", 42))
    return DigitCodec.from_preprocessing(manifest.preprocessing).from_uint8(x), y


def _text_split(manifest: Manifest, version_dir: Path) -> Split:
    data = manifest.provenance.get("dataset") or {}
    seed = data.get("seed", 42)
    split = datasets.rotten_tomatoes_split(data.get("variant", "full"),
                                           data.get("test_fraction", 0.2), seed)
    texts, y = datasets.subset(split.x_test, split.y_test, data.get("test_limit"), seed)
    codec = TextCodec.from_preprocessing(manifest.preprocessing, version_dir)
    return codec.encode(list(texts)), y


def _image_split(manifest: Manifest, version_dir: Path) -> Split:
    data = manifest.provenance.get("dataset") or {}
    pre, limit, seed = manifest.preprocessing, data.get("test_limit"), data.get("seed", 42)
    if "path" not in data:
        raise DataError("the manifest does not say which image folder it was trained on")
    classes, x, y = image_data.load_test_images(
        Path(data["path"]), ImageCodec.from_preprocessing(pre), test_limit=limit,
        test_fraction=data.get("test_fraction", 0.2), seed=seed)
    if classes != manifest.labels:
        raise DataError(f"image folder classes {classes} differ from the labels "
                        f"{manifest.labels}")
    return x, y


def predict_labels(session: Any, manifest: Manifest, x: np.ndarray,
                   batch_size: int = 64) -> np.ndarray:
    name, output = manifest.inputs[0].name, manifest.postprocessing.output
    parts = [session.run([output], {name: x[i:i + batch_size]})[0]
             for i in range(0, len(x), batch_size)]
    scores = np.concatenate(parts)
    if manifest.postprocessing.kind == "softmax":
        return scores.argmax(axis=1)
    return (scores.reshape(-1) >= 0.5).astype(np.int64)


def p50_latency_ms(session: Any, manifest: Manifest, x: np.ndarray, runs: int) -> float:
    """Median wall time of single-item calls (after a short warm-up)."""
    name, output = manifest.inputs[0].name, manifest.postprocessing.output
    items = [x[i % len(x)][None] for i in range(runs)]
    for item in items[:5]:
        session.run([output], {name: item})
    times = []
    for item in items:
        start = time.perf_counter()
        session.run([output], {name: item})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def evaluate_version(version_dir: Path, latency_runs: int | None = None) -> dict[str, Any]:
    """Score one version and write the numbers into its manifest."""
    import onnxruntime as ort

    if not has_manifest(version_dir):
        raise NotEvaluated("a bare model.onnx (no manifest): a generic model, there is no "
                           "test split to score it on")
    manifest = read_manifest(version_dir)
    _split_loader(manifest)  # before any work: NotEvaluated for models without a split
    model_path = version_dir / manifest.model_file
    if sha256_file(model_path) != manifest.sha256:
        raise TrainingError(f"{model_path}: sha256 does not match the manifest")
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    x, y = load_test_split(manifest, version_dir)
    accuracy = float((predict_labels(session, manifest, x) == y).mean())
    runs = latency_runs or (50 if manifest.task == "image" else 300)
    result = {"test_accuracy": round(accuracy, 4), "test_items": len(y),
              **versus_baseline(accuracy, manifest.metrics.get("baseline")),
              "size_bytes": model_path.stat().st_size,
              "p50_latency_ms": round(p50_latency_ms(session, manifest, x, runs), 3),
              "latency_runs": runs, "providers": session.get_providers(),
              "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    manifest.metrics["onnxruntime"] = result
    rewrite_manifest(version_dir, manifest)
    return {"model": manifest.name, "version": manifest.version, **result,
            "tf_accuracy": manifest.metrics.get("test_accuracy"),
            "baseline_name": (manifest.metrics.get("baseline") or {}).get("name")}


def versus_baseline(accuracy: float, baseline: dict[str, Any] | None) -> dict[str, Any]:
    """The baseline's accuracy on the same split, the difference, and whether the model loses."""
    if not baseline or baseline.get("test_accuracy") is None:
        return {"baseline_accuracy": None, "vs_baseline": None, "below_baseline": None}
    reference = float(baseline["test_accuracy"])
    difference = round(accuracy - reference, 4)
    return {"baseline_accuracy": reference, "vs_baseline": difference,
            "below_baseline": difference < 0}


def rewrite_manifest(version_dir: Path, manifest: Manifest) -> None:
    """Replace manifest.json atomically (a reader sees the old or the new file, whole)."""
    staging = version_dir / f".{MANIFEST_FILE}.tmp"
    staging.mkdir(exist_ok=True)
    try:
        write_manifest(staging, manifest)
        os.replace(staging / MANIFEST_FILE, version_dir / MANIFEST_FILE)
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()


def evaluate_repository(repository: Path, names: list[str] | None = None,
                        latency_runs: int | None = None) -> list[dict[str, Any]]:
    """Every version of every (or the named) model; failures become rows with an error."""
    rows = []
    for name in names or list_models(repository):
        for version in list_versions(repository / name):
            version_dir = repository / name / str(version)
            try:
                rows.append(evaluate_version(version_dir, latency_runs))
            except NotEvaluated as exc:
                logger.info("skipping %s: %s", version_dir, exc)
                rows.append({"model": name, "version": version, "skipped": str(exc)})
            except (TrainingError, ValueError, OSError) as exc:
                logger.warning("cannot evaluate %s: %s", version_dir, exc)
                rows.append({"model": name, "version": version, "error": str(exc)})
    return rows


def format_leaderboard(rows: list[dict[str, Any]]) -> str:
    """One line per version: ONNX Runtime accuracy beside its baseline on the same split.

    A model that scores below its baseline is marked ``<`` and named under the table.
    """
    header = (f"{'model':<10} {'version':>7} {'accuracy':>8} {'tf_acc':>7} {'baseline':>8} "
              f"{'vs_base':>9} {'size_MB':>8} {'p50_ms':>8}")
    lines, losers = [header, "-" * len(header)], []
    for row in sorted(rows, key=lambda r: (r["model"], r["version"])):
        if "skipped" in row:
            lines.append(f"{row['model']:<10} {row['version']:>7}  skipped: {row['skipped']}")
            continue
        if "error" in row:
            lines.append(f"{row['model']:<10} {row['version']:>7}  not evaluated: {row['error']}")
            continue
        mark = "<" if row.get("below_baseline") else " "
        if row.get("below_baseline"):
            losers.append(f"{row['model']} {row['version']} ({row['baseline_name']})")
        lines.append(f"{row['model']:<10} {row['version']:>7} {row['test_accuracy']:>8.4f} "
                     f"{_num(row['tf_accuracy']):>7} {_num(row['baseline_accuracy']):>8} "
                     f"{_signed(row['vs_baseline']):>8}{mark} "
                     f"{row['size_bytes'] / 1e6:>8.2f} {row['p50_latency_ms']:>8.3f}")
    if losers:
        lines.append(f"< below its baseline on the same split: {', '.join(losers)}")
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{value:+.4f}"
