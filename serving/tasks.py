"""Task pre- and postprocessing: raw items → model tensors, probabilities → predictions.

Protocol-blind (numpy and the shared codecs only). Every item is decoded and
validated on its own, so a bad item raises InvalidInput naming its index before
anything is queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serving.codecs import DigitCodec, ImageCodec, TextCodec
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


def _item_error(index: int, exc: InvalidInput) -> InvalidInput:
    err = type(exc)(f"item {index}: {exc.message}")
    err.__cause__ = exc
    return err


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    """np.stack, without its generality for the one-item request (most of them)."""
    return rows[0][np.newaxis] if len(rows) == 1 else np.stack(rows)


def decode_images(codec: ImageCodec, images: Sequence[bytes]) -> np.ndarray:
    """Encoded images → (n, height, width, 3) float32."""
    rows = []
    for i, data in enumerate(images):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInput(f"item {i}: image must be bytes, got {type(data).__name__}")
        try:
            rows.append(codec.decode(bytes(data)))
        except InvalidInput as exc:
            raise _item_error(i, exc) from exc
    return _stack(rows)


def decode_digits(codec: DigitCodec, digits: Sequence[Any]) -> np.ndarray:
    """Encoded images or numbers (784 or 28x28) → (n, 784) float32."""
    rows = []
    for i, item in enumerate(digits):
        try:
            if isinstance(item, (bytes, bytearray, memoryview)):
                rows.append(codec.decode_image(bytes(item)))
            else:
                rows.append(codec.decode_values(item))
        except InvalidInput as exc:
            raise _item_error(i, exc) from exc
    return _stack(rows)


def encode_texts(codec: TextCodec, texts: Sequence[str]) -> np.ndarray:
    """Strings → (n, max_length) int32 token ids (the codec names the bad item)."""
    return codec.encode(list(texts))


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
