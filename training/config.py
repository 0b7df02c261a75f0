"""Hyperparameters of a training run and what a trainer hands to the exporter."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("digit", "text", "image")
# Per-task defaults, chosen by the measurements in docs/training.md. Text epochs are a
# ceiling: early stopping on the validation split usually ends it sooner.
DEFAULT_EPOCHS = {"digit": 10, "text": 20, "image": 1}
DEFAULT_BATCH_SIZE = {"digit": 128, "text": 32, "image": 16}
DEFAULT_LEARNING_RATE = {"digit": 2e-3, "text": 2e-3, "image": 2e-3}
PARITY_ITEMS = 32


@dataclass
class TrainConfig:
    """Hyperparameters; None means the task's default. Text and image fields apply to those."""

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None  # peak of the warm-up + cosine schedule (Adam)
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 42
    verbose: Any = "auto"  # auto: a bar on a terminal, one line per epoch otherwise
    num_words: int = 10_000
    max_length: int = 100
    embedding_dim: int = 16
    oov_token: str | None = None
    corpus: str = "full"
    test_fraction: float = 0.2
    validation_fraction: float = 0.1  # text: early-stopping split taken from the training part
    patience: int = 5  # text: epochs without a better validation loss before stopping
    dropout: float = 0.5  # text: on the pooled embedding
    nb_init_dims: int = 16  # text: embedding dimensions started at naive-Bayes ratios (0: none)
    image_data_dir: Path | None = None
    image_size: int = 150
    weights: str = "auto"  # auto | imagenet | none | a weights file
    train_base: bool | None = None  # None: train the base only when no weights are loaded
    precision: str = "auto"  # image: auto | float32 | mixed_bfloat16

    def epochs_for(self, task: str) -> int:
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS[task]

    def batch_size_for(self, task: str) -> int:
        return self.batch_size if self.batch_size is not None else DEFAULT_BATCH_SIZE[task]

    def learning_rate_for(self, task: str) -> float:
        return (self.learning_rate if self.learning_rate is not None
                else DEFAULT_LEARNING_RATE[task])

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
    history: dict[str, Any] | None = None  # per-epoch curves (and early stopping's choice)


def hyperparameters(config: TrainConfig, task: str, *names: str) -> dict[str, Any]:
    values = {name: getattr(config, name) for name in names}
    return {"epochs": config.epochs_for(task), "batch_size": config.batch_size_for(task),
            "learning_rate": config.learning_rate_for(task), "seed": config.seed, **values}
