"""tf.Example messages (TF Serving's Classify and Regress) as the task plug-ins read them.

Wire conversion only: each feature becomes a ``Feature`` (its list kind and values,
not copied); the model's task says what the features of one example make
(serving/tasks/, ``feature_item``).
"""

from __future__ import annotations

from typing import Any, Literal

from serving.errors import InvalidInput
from serving.tasks import Feature

_KINDS: dict[str, Literal["bytes", "float", "int64"]] = {
    "bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


def example_features(example: Any, index: int) -> dict[str, Feature]:
    """One tf.Example's features by name."""
    features = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind is None:
            raise InvalidInput(f"example {index}: feature {name!r} holds no list")
        features[name] = Feature(_KINDS[kind], getattr(feature, kind).value)
    return features
