"""tf.Example features as task items (TF Serving's Classify and Regress).

String tensors for numeric inputs are decoded by serving/encoded_inputs.py, shared
with REST v2.
"""

from __future__ import annotations

from typing import Any

from serving.errors import InvalidInput


def feature_item(task: str, features: Any, index: int) -> Any:
    """One tf.Example's feature as a task item: bytes (image, text) or numbers (digit).

    The feature is the example's only one, or the one named like the task.
    """
    feature_map = features.feature
    if len(feature_map) == 1:
        feature = next(iter(feature_map.values()))
    elif task in feature_map:
        feature = feature_map[task]
    else:
        raise InvalidInput(f"example {index}: give one feature, or one named {task!r}; "
                           f"got {sorted(feature_map)}")
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list" and len(feature.bytes_list.value) == 1:
        value = feature.bytes_list.value[0]
        if task != "text":
            return value
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"example {index}: text must be UTF-8",
                               detail=str(exc)) from exc
    if kind == "float_list" and task == "digit":
        return list(feature.float_list.value)
    if kind == "int64_list" and task == "digit":
        return list(feature.int64_list.value)
    raise InvalidInput(f"example {index}: a {task} model needs "
                       f"{'784 floats or ' if task == 'digit' else ''}one bytes value, got {kind}")
