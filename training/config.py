"""Hyperparameters of a training run and what a trainer hands to the exporter."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("digit", "text", "image")
DEFAULT_EPOCHS = {"digit": 5, "text": 15, "image": 3}
PARITY_ITEMS = 32


@dataclass
class TrainConfig:
    """Hyperparameters; None means the task's default. Text and image fields apply to those."""

    epochs: int | None = None
    batch_size: int = 32
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 42
    verbose: Any = "auto"
    num_words: int = 10_000
    max_length: int = 100
    embedding_dim: int = 16
    oov_token: str | None = None
    corpus: str = "full"
    test_fraction: float = 0.2
    image_data_dir: Path | None = None
    image_size: int = 150
    weights: str = "auto"  # auto | imagenet | none | a weights file
    train_base: bool | None = None  # None: train the base only when no weights are loaded
    learning_rate: float = 1e-3

    def epochs_for(self, task: str) -> int:
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS[task]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_data_dir"] = str(self.image_data_dir) if self.image_data_dir else None
        return data


@dataclass
class TrainResult:
    task: str
    model: Any
    labels: list[str]
    preprocessing: dict[str, Any]
    postprocessing: dict[str, str]
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    hyperparameters: dict[str, Any]
    parity_inputs: np.ndarray
    train_seconds: float
    assets: dict[str, str] = field(default_factory=dict)
    weights: dict[str, Any] | None = None


def hyperparameters(config: TrainConfig, task: str, *names: str) -> dict[str, Any]:
    values = {name: getattr(config, name) for name in names}
    return {"epochs": config.epochs_for(task), "seed": config.seed, **values}
