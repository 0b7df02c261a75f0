"""A training run on disk: what ``modelserve train`` writes and ``modelserve export`` reads.

    <run>/model.keras        the trained Keras model (also used to re-initialise weights)
    <run>/saved_model/       TensorFlow SavedModel (the conversion source)
    <run>/assets/            files shipped next to model.onnx (e.g. tokenizer.json)
    <run>/parity_inputs.npy  held-out inputs for the TF vs ONNX Runtime parity check
    <run>/run.json           labels, pre/postprocessing, metrics, data set, hyperparameters
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig, TrainResult
from training.errors import TrainingError

logger = logging.getLogger(__name__)
RUN_FILE = "run.json"


def input_spec(model: Any) -> dict[str, Any]:
    """Name, dtype and shape (-1 for unknown dims) of a single-input Keras model."""
    tensor = model.inputs[0]
    name = tensor.name.split(":")[0]
    shape = [-1 if d is None else int(d) for d in tensor.shape]
    return {"name": name, "dtype": str(tensor.dtype).replace("tf.", ""), "shape": shape}


def save_run(result: TrainResult, config: TrainConfig, run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    if any(run_dir.iterdir()):
        raise TrainingError(f"run directory {run_dir} is not empty")
    result.model.save(run_dir / "model.keras")
    result.model.export(str(run_dir / "saved_model"), verbose=False)
    assets = run_dir / "assets"
    assets.mkdir()
    for file_name, text in result.assets.items():
        (assets / file_name).write_text(text, encoding="utf-8")
    np.save(run_dir / "parity_inputs.npy", result.parity_inputs)
    meta = {"task": result.task, "input": input_spec(result.model), "labels": result.labels,
            "preprocessing": result.preprocessing, "postprocessing": result.postprocessing,
            "metrics": result.metrics, "dataset": result.dataset,
            "hyperparameters": result.hyperparameters, "weights": result.weights,
            "history": result.history,
            "train_seconds": result.train_seconds, "config": config.to_json()}
    (run_dir / RUN_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("saved %s run to %s", result.task, run_dir)
    return run_dir


def load_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise TrainingError(f"{run_dir} is not a training run (no {RUN_FILE}); "
                            "create one with `modelserve train`")
    return json.loads(path.read_text(encoding="utf-8"))
