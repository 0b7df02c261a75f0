"""What a task is, and the registry of tasks by name.

A task (the manifest's ``task``) is one object that tells the server everything it
needs beyond a model's tensors:

- at load: ``check(manifest)``, what the task needs of the manifest (a ValueError fails
  that version's load, with the reason), and ``codec(...)``, built from the manifest's
  preprocessing;
- from the wire to items, each protocol handing the task neutral values:
  ``request_items(payload)`` for the REST route ``/v1/{name}:predict`` (``summary`` and
  ``rest_example`` document it), then ``rest_item`` per item once they are counted
  (base64 decoded, say); ``feature_item(features)`` for one tf.Example (TF Serving's
  Classify and Regress); ``tensor_item(value)`` for one element of a string tensor
  (TF Serving strings and ``{"b64"}``, v2 BYTES);
- in the dataplane: ``decode(codec, items, decoder, deadline)``, the items → the
  model's one input tensor (serving/decoding.py decides where the work runs), and
  ``predictions(manifest, outputs, top_k)``, the outputs → one Prediction per item.

Items are counted against the model's batch limit before any is converted or decoded.
Tasks import no web or gRPC library. The seed tasks are ClassificationTasks
(classification.py); serving/tasks/__init__.py registers them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import numpy as np

from serving.errors import InvalidInput
from serving.models.manifest import TASK_NAME_PATTERN, Manifest

if TYPE_CHECKING:
    from serving.config import Settings
    from serving.decoding import Decoder


class Payload(NamedTuple):
    """A REST task request's body, read by its content type (serving/rest/payloads.py)."""

    kind: Literal["json", "files", "raw", "text"]
    value: Any  # parsed JSON, a list of file contents (bytes), the raw bytes, or the text


@dataclass(frozen=True)
class Feature:
    """One tf.Example feature, as its list kind and values (serving/grpc/tf_examples.py)."""

    kind: Literal["bytes", "float", "int64"]
    values: Sequence[Any]


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


class Task(Protocol):
    @property
    def name(self) -> str:
        """The manifest's task, and the REST route /v1/{name}:predict."""

    @property
    def summary(self) -> str:
        """What a REST request holds (the route's OpenAPI description)."""

    @property
    def rest_example(self) -> dict[str, Any]:
        """A JSON request body (the route's OpenAPI example)."""

    def check(self, manifest: Manifest) -> None: ...

    def codec(self, manifest: Manifest, version_dir: Path, settings: Settings) -> Any: ...

    @property
    def number_keys(self) -> frozenset[str]:
        """JSON keys whose arrays of numbers the REST route may read straight into numpy
        (``number_items``); empty for none."""

    def number_items(self, key: str, array: np.ndarray) -> list[Any] | None:
        """Items from the float64 array under ``key`` (a JSON body with that one key); None
        to let ``request_items`` read the body instead."""

    def request_items(self, payload: Payload) -> list[Any]: ...

    def rest_item(self, item: Any, index: int) -> Any: ...

    def feature_item(self, features: Mapping[str, Feature], index: int) -> Any: ...

    def tensor_item(self, value: Any, index: int) -> Any: ...

    async def decode(self, codec: Any, items: Sequence[Any], decoder: Decoder,
                     deadline: float) -> np.ndarray: ...

    def predictions(self, manifest: Manifest, outputs: Mapping[str, np.ndarray],
                    top_k: int | None) -> list[Prediction]: ...


class TaskRegistry:
    """Tasks by name. Registration is at import (serving/tasks/__init__.py), before the
    REST routes are made and models load."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def register(self, task: Task) -> Task:
        if not re.fullmatch(TASK_NAME_PATTERN, task.name):
            raise ValueError(f"task name {task.name!r} must match {TASK_NAME_PATTERN}")
        if task.name in self._tasks:
            raise ValueError(f"task {task.name!r} is already registered")
        self._tasks[task.name] = task
        return task

    def unregister(self, name: str) -> None:
        self._tasks.pop(name, None)

    def get(self, name: str) -> Task:
        """The task; ValueError naming the registered ones when there is none."""
        task = self._tasks.get(name)
        if task is None:
            raise ValueError(f"unknown task {name!r}; the registered tasks are "
                             f"{', '.join(self.names()) or 'none'}")
        return task

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter([self._tasks[name] for name in self.names()])


TASKS = TaskRegistry()


def json_items(body: Any, many: str, one: str, what: str, *,
               list_is_many: bool = False) -> list[Any]:
    """A JSON task body's items: ``{many: [...]}`` or ``{one: item}`` (with
    ``list_is_many``, ``{one: [...]}`` is several items too)."""
    if not isinstance(body, dict):
        raise InvalidInput(f"JSON body must be an object with '{many}' or '{one}'")
    if many in body:
        items = body[many]
        if not isinstance(items, list):
            raise InvalidInput(f"'{many}' must be a list of {what}")
        return items
    if one in body:
        value = body[one]
        return value if list_is_many and isinstance(value, list) else [value]
    raise InvalidInput(f"JSON body needs '{many}' (a list of {what}) or '{one}'")


def single_feature(features: Mapping[str, Feature], name: str, index: int) -> Feature:
    """A one-feature task's feature: the example's only one, or the one named ``name``."""
    if len(features) == 1:
        return next(iter(features.values()))
    if name in features:
        return features[name]
    raise InvalidInput(f"example {index}: give one feature, or one named {name!r}; "
                       f"got {sorted(features)}")


def upload_items(payload: Payload, many: str, one: str, what: str, refusal: str) -> list[Any]:
    """Items of a task whose clients upload files: multipart files, one raw body, or
    JSON ``{many: [...]}`` / ``{one: item}`` (``refusal``: the error for anything else)."""
    if payload.kind == "files":
        return list(payload.value)
    if payload.kind == "raw":
        return [payload.value]
    if payload.kind != "json" or not isinstance(payload.value, dict):
        raise InvalidInput(refusal)
    return json_items(payload.value, many, one, what)
