"""Task postprocessing: probabilities → predictions (items are decoded by decoding.py).

Protocol-blind (numpy only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.errors import InvalidInput
from serving.models.manifest import Manifest


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    top: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "probability": self.probability,
                "top": [{"label": lbl, "probability": p} for lbl, p in self.top]}


@dataclass(frozen=True)
class TaskResult:
    model_name: str
    model_version: int
    predictions: list[Prediction]

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_version": str(self.model_version),
                "predictions": [p.to_dict() for p in self.predictions]}


def probabilities(manifest: Manifest, output: np.ndarray) -> np.ndarray:
    """The model's postprocessing output → (n, len(labels)) class probabilities."""
    out = np.asarray(output, dtype=np.float64).reshape(output.shape[0], -1)
    assert manifest.postprocessing is not None  # a task's manifest has it (validated)
    if manifest.postprocessing.kind == "sigmoid":
        p = out[:, :1]
        return np.concatenate([1.0 - p, p], axis=1)
    return out


def to_predictions(manifest: Manifest, probs: np.ndarray, top_k: int | None) -> list[Prediction]:
    labels = manifest.labels
    if probs.shape[1] != len(labels):
        raise InvalidInput(f"model {manifest.name} gives {probs.shape[1]} probabilities "
                           f"for {len(labels)} labels")
    k = len(labels) if top_k is None else max(1, min(int(top_k), len(labels)))
    predictions = []
    for row in probs.tolist():  # Python floats: sorting a few labels beats numpy calls
        order = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:k]
        top = [(labels[j], row[j]) for j in order]
        predictions.append(Prediction(label=top[0][0], probability=top[0][1], top=top))
    return predictions
