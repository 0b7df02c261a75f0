"""Export a training run into the model repository as a new, verified version.

    <repository>/<name>/<N+1>/{model.onnx, manifest.json, labels.txt, <assets>}

The version is assembled in a hidden staging directory next to the versions and
renamed into place only when complete, so servers never see half a version; an
existing version is never overwritten.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from serving.models.manifest import MODEL_FILE, Manifest, TensorSpec, sha256_file, write_manifest
from training import convert, verify
from training.errors import ExportError
from training.run import load_run

logger = logging.getLogger(__name__)


def next_version(model_dir: Path) -> int:
    """One past the highest numbered directory, complete or not, so numbers are never reused."""
    numbers = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(numbers, default=0) + 1


def publish(staging: Path, model_dir: Path, manifest: Manifest) -> Path:
    """Rename the staged version into place as the next free number (retrying on races)."""
    for _ in range(100):
        version = next_version(model_dir)
        manifest.version = version
        write_manifest(staging, manifest)
        target = model_dir / str(version)
        try:
            os.rename(staging, target)  # fails if another writer took this number
            return target
        except OSError:
            if not target.exists():
                raise
    raise ExportError(f"could not claim a version number in {model_dir}")


def framework_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
                 "onnxruntime-gpu", "numpy"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return versions


def build_manifest(run: dict[str, Any], name: str, onnx_path: Path, opset: int,
                   parity: dict[str, Any], extra: dict[str, Any]) -> Manifest:
    inputs, outputs = convert.onnx_specs(onnx_path)
    provenance = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "frameworks": framework_versions(), "opset": opset, "dataset": run["dataset"],
        "weights": run.get("weights"),
        "training": {"hyperparameters": run["hyperparameters"],
                     "train_seconds": run["train_seconds"], "history": run.get("history")},
        "parity": parity, **extra}
    return Manifest(name=name, version=1, task=run["task"], sha256=sha256_file(onnx_path),
                    inputs=[TensorSpec(**spec) for spec in inputs],
                    outputs=[TensorSpec(**spec) for spec in outputs],
                    preprocessing=run["preprocessing"], postprocessing=run["postprocessing"],
                    labels=run["labels"], metrics=run["metrics"], provenance=provenance)


def export_run(run_dir: Path, repository: Path, *, name: str | None = None,
               opset: int = convert.DEFAULT_OPSET, tolerance: float = verify.DEFAULT_TOLERANCE,
               extra_provenance: dict[str, Any] | None = None) -> Path:
    """Convert, verify and publish one run; returns the new version directory."""
    start = time.perf_counter()
    run = load_run(run_dir)
    name = name or run["task"]
    model_dir = repository / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
    try:
        parity = _convert_and_verify(run_dir, run, staging, opset, tolerance)
        for asset in sorted((run_dir / "assets").iterdir()):
            shutil.copy2(asset, staging / asset.name)
        (staging / "labels.txt").write_text("\n".join(run["labels"]) + "\n", encoding="utf-8")
        extra = dict(extra_provenance or {})
        extra["export_seconds"] = round(time.perf_counter() - start, 1)
        manifest = build_manifest(run, name, staging / MODEL_FILE, opset, parity, extra)
        target = publish(staging, model_dir, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s version %s to %s in %.1f s", name, target.name, target,
                time.perf_counter() - start)
    return target


def _convert_and_verify(run_dir: Path, run: dict[str, Any], staging: Path, opset: int,
                        tolerance: float) -> dict[str, Any]:
    spec, output = run["input"], run["postprocessing"]["output"]
    onnx_path = staging / MODEL_FILE
    convert.convert_saved_model(run_dir / "saved_model", spec, output, onnx_path, opset)
    inputs = np.load(run_dir / "parity_inputs.npy")
    parity = verify.check_parity(run_dir / "saved_model", onnx_path, spec, output, inputs,
                                 tolerance)
    if run["task"] == "image":
        parity["random_weights"] = verify.random_weights_parity(
            run_dir / "model.keras", spec, output, inputs, opset, tolerance)
    return parity
