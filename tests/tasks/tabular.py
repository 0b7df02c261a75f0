"""The tabular task: a row of named numbers → labels (an iris flower's species, say).

A row is a JSON object {"sepal_length": 5.1, ...} over REST, or a tf.Example whose
features are one number each (TF Serving's Classify). The manifest's preprocessing
names the features in the order of the model's input columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from serving.decoding import item_errors
from serving.errors import InvalidInput
from serving.models.manifest import Manifest
from serving.tasks.base import Feature, Payload, json_items
from serving.tasks.classification import ClassificationTask

if TYPE_CHECKING:
    from serving.config import Settings
    from serving.decoding import Decoder


@dataclass(frozen=True)
class RowCodec:
    columns: tuple[str, ...]  # the model input's columns, in order

    def row(self, item: Any) -> np.ndarray:
        if not isinstance(item, Mapping) or sorted(item) != sorted(self.columns):
            raise InvalidInput(f"a row must be an object with the numbers "
                               f"{list(self.columns)}")
        values = [item[name] for name in self.columns]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise InvalidInput("a row's values must be numbers")
        row = np.asarray(values, dtype=np.float32)
        if not np.isfinite(row).all():
            raise InvalidInput("a row's values must be finite")
        return row


class TabularTask(ClassificationTask[RowCodec]):
    name = "tabular"
    summary = 'JSON {"rows": [{"<column>": number, ...}, ...]} or {"row": {...}}.'
    rest_example: ClassVar[dict[str, Any]] = {"row": {"sepal_length": 5.1, "sepal_width": 3.5,
                                                      "petal_length": 1.4, "petal_width": 0.2}}

    def check(self, manifest: Manifest) -> None:
        super().check(manifest)  # one input, labels and postprocessing
        if not manifest.preprocessing.get("columns"):
            raise ValueError("task 'tabular' needs preprocessing.columns, the input's "
                             "columns in order")

    def codec(self, manifest: Manifest, version_dir: Path, settings: Settings) -> RowCodec:
        return RowCodec(tuple(manifest.preprocessing["columns"]))

    def request_items(self, payload: Payload) -> list[Any]:
        if payload.kind != "json":
            raise InvalidInput('tabular body must be JSON {"rows": [...]} or {"row": {...}}')
        return json_items(payload.value, "rows", "row", "rows")

    def feature_item(self, features: Mapping[str, Feature], index: int) -> dict[str, Any]:
        row = {}
        for name, feature in features.items():
            if feature.kind == "bytes" or len(feature.values) != 1:
                raise InvalidInput(f"example {index}: feature {name!r} must be one number")
            row[name] = float(feature.values[0])
        return row

    def tensor_item(self, value: Any, index: int) -> Any:
        raise InvalidInput(f"item {index}: a tabular model takes rows (JSON objects or "
                           f"tf.Examples), not strings")

    async def decode(self, codec: RowCodec, items: Sequence[Any], decoder: Decoder,
                     deadline: float) -> np.ndarray:
        rows = []
        for i, item in enumerate(items):  # a few numbers each: no need for the pool
            with item_errors(i):
                rows.append(codec.row(item))
        return np.stack(rows)
