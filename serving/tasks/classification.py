"""The seed tasks' shape: one input decoded from items, outputs read as class probabilities.

A ClassificationTask's manifest names its labels and how to read the output
(``postprocessing``: ``softmax``, one probability per label, or ``sigmoid``, the
probability of ``labels[1]``). Subclasses say how items arrive and decode
(digit.py, text.py, image.py). Numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from serving.errors import InvalidInput
from serving.models.manifest import Manifest
from serving.tasks.base import Feature, Prediction, single_feature

C = TypeVar("C")
_BINARY = (bytes, bytearray, memoryview)


class ClassificationTask(Generic[C]):
    name: ClassVar[str]
    summary: ClassVar[str]
    rest_example: ClassVar[dict[str, Any]]
    number_keys: ClassVar[frozenset[str]] = frozenset()

    def number_items(self, key: str, array: np.ndarray) -> list[Any] | None:
        return None

    def check(self, manifest: Manifest) -> None:
        if len(manifest.inputs) != 1:
            raise ValueError(f"task {self.name!r} needs a model with one input, "
                             f"got {[s.name for s in manifest.inputs]}")
        if manifest.postprocessing is None or not manifest.labels:
            raise ValueError(f"task {self.name!r} needs postprocessing and labels")

    def rest_item(self, item: Any, index: int) -> Any:
        return item

    def feature_item(self, features: Mapping[str, Feature], index: int) -> Any:
        """The example's one bytes value (an encoded image, a UTF-8 text)."""
        return self.bytes_feature(single_feature(features, self.name, index), index)

    def bytes_feature(self, feature: Feature, index: int, also: str = "") -> bytes:
        if feature.kind == "bytes" and len(feature.values) == 1:
            return bytes(feature.values[0])
        raise InvalidInput(f"example {index}: a {self.name} model needs {also}one bytes "
                           f"value, got {feature.kind}_list of {len(feature.values)}")

    def tensor_item(self, value: Any, index: int) -> Any:
        return value

    def binary_item(self, value: Any, index: int, what: str) -> Any:
        """A string tensor element that must be bytes (an encoded image)."""
        if isinstance(value, _BINARY):
            return value
        raise InvalidInput(f"item {index}: {what} in a string tensor must be an encoded "
                           f"image (bytes; {{\"b64\": ...}} in JSON), got "
                           f"{type(value).__name__}")

    def predictions(self, manifest: Manifest, outputs: Mapping[str, np.ndarray],
                    top_k: int | None) -> list[Prediction]:
        assert manifest.postprocessing is not None  # check() made sure at load
        probs = probabilities(manifest, outputs[manifest.postprocessing.output])
        return to_predictions(manifest, probs, top_k)


def probabilities(manifest: Manifest, output: np.ndarray) -> np.ndarray:
    """The model's postprocessing output → (n, len(labels)) class probabilities."""
    out = np.asarray(output, dtype=np.float64).reshape(output.shape[0], -1)
    assert manifest.postprocessing is not None  # a task's manifest has it (checked at load)
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
