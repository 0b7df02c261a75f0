"""``build-models``: train, export and verify the default models, one after another.

Each model goes through the same steps as ``modelserve train`` + ``modelserve export``
(a run directory, then a verified ONNX version), with each step timed and the
seconds recorded in the manifest's provenance.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from training.config import TASKS, TrainConfig
from training.errors import TrainingError

logger = logging.getLogger(__name__)

# Short runs for tests and CI, the image model still at 150x150. Each still learns
# (tests/training/test_training_pipeline.py holds it to a floor under its baseline): the
# image model from random weights needs a few hundred images for that, 640 take about
# 40 CPU seconds; with fewer it answers one class for everything.
QUICK: dict[str, dict[str, Any]] = {
    "digit": {"epochs": 1, "train_limit": None, "test_limit": 2000},
    "text": {"epochs": 4, "train_limit": None, "test_limit": 1000},
    "image": {"epochs": 1, "train_limit": 640, "test_limit": 200},
}


def task_config(task: str, base: TrainConfig, *, quick: bool = False,
                epochs: dict[str, int] | None = None,
                image_limits: tuple[int | None, int | None] = (None, None)) -> TrainConfig:
    """One task's config: base flags, then --quick sizes, then per-model flags."""
    config = dataclasses.replace(base, **QUICK[task]) if quick else base
    if epochs and task in epochs:
        config = dataclasses.replace(config, epochs=epochs[task])
    if task == "image":
        train_limit, test_limit = image_limits
        config = dataclasses.replace(
            config, train_limit=config.train_limit if train_limit is None else train_limit,
            test_limit=config.test_limit if test_limit is None else test_limit)
    return config


def preflight(tasks: list[str], config: TrainConfig) -> None:
    """Check the image folder's layout before any training, so a bad path fails in seconds."""
    if "image" not in tasks:
        return
    from training import image_data
    from training.train_image import resolve_image_dir

    if config.weights not in {"auto", "imagenet", "none"} and not Path(config.weights).is_file():
        raise TrainingError(f"weights file not found: {config.weights}")
    image_data.tree_files(resolve_image_dir(config), config.test_fraction, config.seed)


def build_one(task: str, config: TrainConfig, out: Path, keep_runs: Path | None) -> Path:
    from training.export import export_run
    from training.run import save_run
    from training.train import train

    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(task, config)
    trained = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"modelserve-run-{task}-") as tmp:
        run_dir = (keep_runs / task) if keep_runs else Path(tmp)
        save_run(result, config, run_dir)
        saved = time.perf_counter()
        seconds = {"train": round(trained - start, 1), "save_run": round(saved - trained, 1)}
        version_dir = export_run(run_dir, out, extra_provenance={
            "build": {"command": "modelserve build-models", "seconds": seconds}})
    seconds["total"] = round(time.perf_counter() - start, 1)
    # CPU seconds of all threads: on a shared machine wall time says little on its own.
    seconds["cpu"] = round(time.process_time() - cpu_start, 1)
    logger.info("%s: built %s in %.1f s (%.1f CPU s)", task, version_dir, seconds["total"],
                seconds["cpu"])
    return version_dir


def build_models(out: Path, base: TrainConfig, *, only: list[str] | None = None,
                 quick: bool = False, epochs: dict[str, int] | None = None,
                 keep_runs: Path | None = None,
                 image_limits: tuple[int | None, int | None] = (None, None)) -> list[Path]:
    """Build each requested model into ``out``; returns the new version directories."""
    tasks = only or list(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise TrainingError(f"unknown model(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(TASKS)}")
    preflight(tasks, base)
    out.mkdir(parents=True, exist_ok=True)
    built, start = [], time.perf_counter()
    for step, task in enumerate(tasks, 1):
        logger.info("[%d/%d] building the %s model%s", step, len(tasks), task,
                    " (quick)" if quick else "")
        config = task_config(task, base, quick=quick, epochs=epochs, image_limits=image_limits)
        built.append(build_one(task, config, out, keep_runs))
    logger.info("built %d model(s) into %s in %.1f s", len(built), out,
                time.perf_counter() - start)
    return built
